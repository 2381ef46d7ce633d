//! Shared helpers for the integration tests: sample images built once per test binary
//! by images/mkimage.sh, the real cgpt/sgdisk as oracles, and the abguard binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The fake sysfs tree (shared with src/probe/sysfs_tests.rs).
pub mod fake_sysfs;
pub use fake_sysfs::FakeSys;

pub const A_UUID: &str = "7130c94a-213a-4e5a-8e26-6cce9662f132";
pub const B_UUID: &str = "e03dd35c-7c2d-4a47-b3fe-27f15780a57c";

/// The one skip policy. A test that lacks a tool, a file or root calls this and returns:
/// outside CI it passes with a SKIPPED line written past the test harness's capture (so
/// it shows even for a passing test); under CI (`CI` set, as .ci/run sets it) it fails,
/// so CI never counts a test that did not run.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so this test may not skip: {why}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A tool on PATH, or None after [`skip`] when it is absent.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        skip(&format!(
            "no {name} on PATH (./ci/install-deps.sh installs it)"
        ));
    }
    found
}

/// Running as root, or false after [`skip`]: loop devices and mounts need it.
pub fn root(what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        skip(&format!("{what} needs root (.ci/run runs as root)"));
    }
    root
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: ABGUARD_BIN (e.g. the static release build) or cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("ABGUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_abguard")))
}

pub fn abguard(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("running abguard")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is needed for this test ({e}); run ./ci/install-deps.sh")
    });
    o
}

pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub struct Sample {
    _dir: tempfile::TempDir,
    pub img: PathBuf,
    pub env: String,
}

impl Sample {
    pub fn var(&self, key: &str) -> String {
        self.env
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing in the image env"))
            .trim_matches('"')
            .to_string()
    }
}

fn build(args: &[&str]) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let mut a: Vec<&str> = vec!["-q"];
    a.extend_from_slice(args);
    let img_s = img.to_str().unwrap().to_string();
    a.push(&img_s);
    run_ok(repo().join("images/mkimage.sh").to_str().unwrap(), &a);
    let env = std::fs::read_to_string(dir.path().join("disk.env")).unwrap();
    Sample {
        _dir: dir,
        img,
        env,
    }
}

/// A fresh Flatcar-layout image with real verity filesystems (A=1.0.0, B=2.0.0),
/// built once per test binary; use `copy` to get a private writable copy.
pub fn sample() -> &'static Sample {
    static S: OnceLock<Sample> = OnceLock::new();
    S.get_or_init(|| build(&["--version-a", "1.0.0", "--version-b", "2.0.0"]))
}

/// A private copy of the sample image.
pub fn copy(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(&sample().img, &p).unwrap();
    p
}

/// cgpt's view of one partition: (priority, tries, successful, -A value).
pub fn cgpt_attrs(img: &Path, n: u32) -> (u8, u8, bool, u16) {
    let i = n.to_string();
    let q = |flag: &str| {
        run_ok("cgpt", &["show", "-i", &i, flag, img.to_str().unwrap()])
            .trim()
            .to_string()
    };
    let a = q("-A");
    (
        q("-P").parse().unwrap(),
        q("-T").parse().unwrap(),
        q("-S") == "1",
        u16::from_str_radix(a.trim_start_matches("0x"), 16).unwrap(),
    )
}

/// sgdisk's full 64-bit attribute field of partition `n`.
pub fn sgdisk_attr_bits(img: &Path, n: u32) -> u64 {
    let out = run_ok("sgdisk", &["-i", &n.to_string(), img.to_str().unwrap()]);
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix("Attribute flags: "))
        .expect("sgdisk prints the attribute flags");
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

pub fn cgpt_add(img: &Path, n: u32, p: u8, t: u8, s: bool) {
    run_ok(
        "cgpt",
        &[
            "add",
            "-i",
            &n.to_string(),
            "-P",
            &p.to_string(),
            "-T",
            &t.to_string(),
            "-S",
            if s { "1" } else { "0" },
            img.to_str().unwrap(),
        ],
    );
}

/// Deterministic xorshift so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn sha(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// A fake initrd view of a machine booted from partition `part` of vda: sysfs with
/// dm-0 ("usr") on top of vdaN, a mountinfo with /sysusr/usr on dm-0, a command line,
/// dm status/table files, and empty /run and sysroot directories.
pub struct FakeMachine {
    pub dir: tempfile::TempDir,
    pub disk: PathBuf,
}

impl FakeMachine {
    pub fn new(disk: &Path) -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        let m = FakeMachine {
            dir,
            disk: disk.to_path_buf(),
        };
        for d in ["run", "sysroot/usr/lib"] {
            std::fs::create_dir_all(m.p(d)).unwrap();
        }
        let sys = m.sys();
        sys.disk("vda", "254:0");
        for n in [1u32, 2, 3, 4, 6, 7, 9] {
            sys.part("vda", &format!("vda{n}"), n, &format!("254:{n}"));
        }
        m
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The machine's sysfs, to add or change devices.
    pub fn sys(&self) -> FakeSys {
        FakeSys::at(&self.p("sys"))
    }

    /// /usr really comes from partition `sysfs_part`; the command line claims `cmdline`.
    pub fn boot(&self, sysfs_part: u32, cmdline: &str, dm_status: &str, dm_roothash: &str) {
        self.sys()
            .dm("dm-0", "usr", "253:0", &[&format!("vda{sysfs_part}")]);
        std::fs::write(self.p("mountinfo"), "1 0 254:9 / / rw - ext4 /dev/vda9 rw\n25 1 253:0 / /sysusr/usr ro - ext4 /dev/mapper/usr ro\n")
            .unwrap();
        std::fs::write(self.p("cmdline"), format!("{cmdline}\n")).unwrap();
        std::fs::write(self.p("dm-status"), format!("0 32496 verity {dm_status}\n")).unwrap();
        std::fs::write(
            self.p("dm-table"),
            format!("0 32496 verity 1 254:{sysfs_part} 254:{sysfs_part} 4096 4096 4062 4063 sha256 {dm_roothash} 00\n"),
        )
        .unwrap();
    }

    pub fn os_release(&self, version: &str) {
        std::fs::write(
            self.p("sysroot/usr/lib/os-release"),
            format!("ID=flatcar\nVERSION_ID={version}\n"),
        )
        .unwrap();
    }

    /// The options that point abguard at this machine instead of the host.
    pub fn probe_args(&self) -> Vec<String> {
        let s = |r: &str| self.p(r).to_str().unwrap().to_string();
        [
            ("--disk", self.disk.to_str().unwrap().to_string()),
            ("--cmdline", s("cmdline")),
            ("--sysfs", s("sys")),
            ("--dev", s("dev")),
            ("--mountinfo", s("mountinfo")),
            ("--usr", "/sysusr/usr".to_string()),
            ("--sysroot", s("sysroot")),
            ("--run-dir", s("run")),
            ("--proc", s("proc")),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }

    /// Run `verb` against this machine; it must succeed.
    pub fn verb(&self, verb: &[&str]) -> Output {
        let mut args: Vec<String> = verb.iter().map(|x| x.to_string()).collect();
        args.extend(self.probe_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = abguard(&refs);
        assert!(o.status.success(), "{verb:?}: {}", stderr(&o));
        o
    }

    pub fn initrd(&self, extra: &[&str]) -> Output {
        let s = |r: &str| self.p(r).to_str().unwrap().to_string();
        let mut args: Vec<String> = vec!["initrd".into(), "--no-reboot".into(), "--json".into()];
        args.extend(self.probe_args());
        args.extend([
            "--dm-status".into(),
            s("dm-status"),
            "--dm-table".into(),
            s("dm-table"),
        ]);
        args.extend(extra.iter().map(|x| x.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        abguard(&refs)
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.p("sysroot/var/lib/abguard/attempts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn verity_cmdline(uuid: &str, hash: &str) -> String {
    format!("BOOT_IMAGE=/flatcar/vmlinuz-a mount.usr=/dev/mapper/usr verity.usr=PARTUUID={uuid} rootflags=rw mount.usrflags=ro root=LABEL=ROOT verity.usrhash={hash}")
}

/// A 64 KiB GPT with USR-A (3), USR-B (4) and ROOT (9), fresh attributes, built once
/// with sgdisk and cgpt; small enough to copy for every cut point and model state.
pub fn tiny_gpt() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("tiny.img");
        std::fs::write(&img, vec![0u8; 64 * 1024]).unwrap();
        let usr = "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6";
        run_ok(
            "sgdisk",
            &[
                "-a",
                "1",
                "-n",
                "3:40:47",
                "-t",
                &format!("3:{usr}"),
                "-c",
                "3:USR-A",
                "-u",
                &format!("3:{A_UUID}"),
                "-n",
                "4:48:55",
                "-t",
                &format!("4:{usr}"),
                "-c",
                "4:USR-B",
                "-u",
                &format!("4:{B_UUID}"),
                "-n",
                "9:56:63",
                "-t",
                "9:3884DD41-8582-4404-B9A8-E9B84F2DF50E",
                "-c",
                "9:ROOT",
                img.to_str().unwrap(),
            ],
        );
        cgpt_add(&img, 3, 1, 0, true);
        std::fs::read(&img).unwrap()
    })
}

/// A disk that loses power: the first `whole` writes land, the next one lands only up to
/// `tear_sectors` whole sectors (if given), and nothing after that reaches the medium.
pub struct PowerCut {
    pub disk: std::io::Cursor<Vec<u8>>,
    pub whole: usize,
    pub tear_sectors: Option<usize>,
    pub writes_seen: usize,
}

impl PowerCut {
    pub fn new(image: Vec<u8>, whole: usize, tear_sectors: Option<usize>) -> Self {
        PowerCut {
            disk: std::io::Cursor::new(image),
            whole,
            tear_sectors,
            writes_seen: 0,
        }
    }
    pub fn into_image(self) -> Vec<u8> {
        self.disk.into_inner()
    }
}

impl std::io::Read for PowerCut {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.disk.read(buf)
    }
}

impl std::io::Seek for PowerCut {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.disk.seek(to)
    }
}

impl std::io::Write for PowerCut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.writes_seen;
        self.writes_seen += 1;
        // after the cut the caller believes its writes happen; the medium never sees them
        let land = match n.cmp(&self.whole) {
            std::cmp::Ordering::Less => buf.len(),
            std::cmp::Ordering::Equal => self.tear_sectors.map_or(0, |t| (t * 512).min(buf.len())),
            std::cmp::Ordering::Greater => 0,
        };
        let pos = self.disk.position();
        self.disk.write_all(&buf[..land])?;
        self.disk.set_position(pos + buf.len() as u64);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl abguard::disk::gpt::BlockDev for PowerCut {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A private copy of the sample image in `dir` on which B was staged and GRUB has
/// picked it: USR-B's first boot after an upgrade.
pub fn staged_and_booted_b(dir: &Path) -> PathBuf {
    let img = copy(dir, "d.img");
    let d = img.to_str().unwrap();
    assert!(abguard(&["stage", "--disk", d, "--partition", "4"])
        .status
        .success());
    assert_eq!(stdout(&abguard(&["next", "--disk", d])).trim(), "4");
    img
}

/// A fake machine whose initrd saw B's first boot after an upgrade (dm-verity fine).
pub fn machine_on_first_boot_of_b(img: &Path) -> FakeMachine {
    let m = FakeMachine::new(img);
    let h = sample().var("USR_B_ROOTHASH");
    m.boot(4, &verity_cmdline(B_UUID, &h), "V", &h);
    m.os_release("2.0.0");
    m
}

/// (priority, tries, successful) of one USR slot.
pub type Attrs = (u8, u8, bool);

/// `base` (a GPT image) with these attributes for USR-A (3) and USR-B (4), written by
/// abguard's own table code so both copies are whole.
pub fn with_attrs(base: &[u8], a: Attrs, b: Attrs) -> Vec<u8> {
    use abguard::{disk::gpt::Table, types::attrs::UsrAttrs};
    let mut c = std::io::Cursor::new(base.to_vec());
    let mut t = Table::read(&mut c, 512).unwrap();
    let mut s = t.slots();
    for (slot, (p, tr, ok)) in s.iter_mut().zip([a, b]) {
        slot.attrs = UsrAttrs::new(p, tr, ok);
    }
    t.set_slots(&s);
    t.write(&mut c).unwrap();
    c.into_inner()
}
