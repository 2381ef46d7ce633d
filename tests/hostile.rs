//! The hostile-input corpus (issue 23): careless and hostile files where abguard, as
//! root, reads, runs and writes. Every row runs the binary (the static release binary
//! under `make test`, ABGUARD_BIN) and asserts a clear error or a safe verdict, no
//! write outside what the verb may write, no panic, and a bounded run time. Each row
//! prints one named result (`hostile CLASS/NAME: ok`); a failing row names itself.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Any row must end within this (a hang is what most rows look for).
const BOUND: Duration = Duration::from_secs(10);

/// Run abguard with `args` (and `env`), killed at BOUND; the output and the time.
fn bounded(args: &[String], env: &[(&str, &str)]) -> (Output, Duration) {
    run_for(args, env, None)
}

/// With `stop`: a verb that watches (gate-pass) is stopped then, not failed.
fn run_for(args: &[String], env: &[(&str, &str)], stop: Option<Duration>) -> (Output, Duration) {
    let t = Instant::now();
    let mut c = Command::new(bin());
    c.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("running abguard");
    // drained while it runs: a full pipe must not look like a hang
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut b);
            }
            b
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let collect = |mut child: std::process::Child| {
        let status = child.wait().unwrap();
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    };
    while child.try_wait().unwrap().is_none() {
        if stop.is_some_and(|s| t.elapsed() > s) {
            child.kill().unwrap();
            break;
        }
        if t.elapsed() > BOUND {
            child.kill().unwrap();
            let o = collect(child);
            panic!("{args:?} still running after {BOUND:?}: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    (collect(child), took)
}

/// No panic (101 in a debug build), no abort or other signal (panic=abort in release).
fn no_panic(row: &str, o: &Output) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        o.status.code().is_some() && o.status.code() != Some(101),
        "{row}: {:?} {}",
        o.status,
        stderr(o)
    );
    assert!(o.status.signal().is_none(), "{row}: killed by a signal");
    assert!(!stderr(o).contains("panicked"), "{row}: {}", stderr(o));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

fn socket(p: &Path) -> std::os::unix::net::UnixListener {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    std::os::unix::net::UnixListener::bind(p).unwrap()
}

/// A sparse file of `len` bytes.
fn sparse(p: &Path, len: u64) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::File::create(p).unwrap().set_len(len).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail
    unsafe { nix::libc::geteuid() == 0 }
}

// ---- 1. only root's own checks run --------------------------------------------

/// A tree that would pass: root-owned, 0755 directories; `api` a 0700 check.
fn check_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    mode(r, 0o755);
    for d in [
        "etc",
        "etc/abguard",
        "etc/abguard/checks.d",
        "usr",
        "usr/lib",
        "usr/lib/abguard",
        "usr/lib/abguard/checks.d",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
        mode(&r.join(d), 0o755);
    }
    let api = r.join("etc/abguard/checks.d/api");
    std::fs::write(&api, "#!/bin/sh\n").unwrap();
    mode(&api, 0o700);
    t
}

type Setup = fn(&Path);

const CHECKS: &[(&str, Setup, Option<&str>)] = &[
    ("root-0700-runs", |_| {}, None),
    (
        "root-0755-runs",
        |r| mode(&r.join("etc/abguard/checks.d/api"), 0o755),
        None,
    ),
    (
        "check-0777",
        |r| mode(&r.join("etc/abguard/checks.d/api"), 0o777),
        Some("checks.d/api: writable by others (mode 0777): refused"),
    ),
    (
        "check-0757",
        |r| mode(&r.join("etc/abguard/checks.d/api"), 0o757),
        Some("checks.d/api: writable by others (mode 0757)"),
    ),
    (
        "check-0775",
        |r| mode(&r.join("etc/abguard/checks.d/api"), 0o775),
        Some("checks.d/api: writable by group 0 (mode 0775)"),
    ),
    (
        "check-owned-by-nobody",
        |r| {
            std::os::unix::fs::chown(r.join("etc/abguard/checks.d/api"), Some(65534), None).unwrap()
        },
        Some("api: owned by uid 65534, not root"),
    ),
    (
        "check-setuid-nobody",
        |r| {
            let p = r.join("etc/abguard/checks.d/api");
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
            mode(&p, 0o4755);
        },
        Some("owned by uid 65534"),
    ),
    (
        "checks.d-0777",
        |r| mode(&r.join("etc/abguard/checks.d"), 0o777),
        Some("checks.d: writable by others (mode 0777)"),
    ),
    (
        "checks.d-1777-sticky",
        |r| mode(&r.join("etc/abguard/checks.d"), 0o1777),
        Some("checks.d: writable by others (mode 1777)"),
    ),
    (
        "checks.d-0775",
        |r| mode(&r.join("etc/abguard/checks.d"), 0o775),
        Some("checks.d: writable by group"),
    ),
    (
        "checks.d-owned-by-nobody",
        |r| std::os::unix::fs::chown(r.join("etc/abguard/checks.d"), Some(65534), None).unwrap(),
        Some("checks.d: owned by uid 65534"),
    ),
    (
        "etc-abguard-0777",
        |r| mode(&r.join("etc/abguard"), 0o777),
        Some("etc/abguard: writable by others"),
    ),
    (
        "etc-0777",
        |r| mode(&r.join("etc"), 0o777),
        Some("/etc: writable by others"),
    ),
    (
        "root-dir-0777",
        |r| mode(r, 0o777),
        Some("writable by others (mode 0777)"),
    ),
    (
        "symlink-to-root-check",
        |r| {
            let d = r.join("etc/abguard/checks.d");
            std::fs::rename(d.join("api"), r.join("usr/lib/abguard/real")).unwrap();
            std::os::unix::fs::symlink(r.join("usr/lib/abguard/real"), d.join("api")).unwrap();
        },
        Some("checks.d/api: a symlink"),
    ),
    (
        "symlink-into-world-writable-dir",
        |r| {
            let vol = r.join("volume");
            std::fs::create_dir(&vol).unwrap();
            mode(&vol, 0o777);
            std::fs::write(vol.join("x"), "#!/bin/sh\n").unwrap();
            mode(&vol.join("x"), 0o755);
            std::os::unix::fs::symlink(vol.join("x"), r.join("etc/abguard/checks.d/vol")).unwrap();
        },
        Some("checks.d/vol: a symlink"),
    ),
    (
        "dangling-symlink",
        |r| {
            std::os::unix::fs::symlink("/nonexistent", r.join("etc/abguard/checks.d/gone")).unwrap()
        },
        Some("checks.d/gone: a symlink"),
    ),
    (
        "symlinked-checks.d",
        |r| {
            let d = r.join("etc/abguard/checks.d");
            std::fs::rename(&d, r.join("etc/abguard/real.d")).unwrap();
            std::os::unix::fs::symlink(r.join("etc/abguard/real.d"), &d).unwrap();
        },
        Some("checks.d: a symlink"),
    ),
    (
        "symlinked-etc-abguard",
        |r| {
            std::fs::rename(r.join("etc/abguard"), r.join("etc/elsewhere")).unwrap();
            std::os::unix::fs::symlink(r.join("etc/elsewhere"), r.join("etc/abguard")).unwrap();
        },
        Some("etc/abguard: a symlink"),
    ),
    (
        "usr-check-0777",
        |r| {
            let p = r.join("usr/lib/abguard/checks.d/disk.wanted");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            mode(&p, 0o777);
        },
        Some("usr/lib/abguard/checks.d/disk.wanted: writable by others"),
    ),
    (
        "usr-lib-abguard-0775",
        |r| {
            let p = r.join("usr/lib/abguard/checks.d/disk");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            mode(&p, 0o755);
            mode(&r.join("usr/lib/abguard"), 0o775);
        },
        Some("usr/lib/abguard: writable by group"),
    ),
    (
        "etc-good-hides-usr-bad",
        |r| {
            let p = r.join("usr/lib/abguard/checks.d/api");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            mode(&p, 0o777);
        },
        None,
    ),
    (
        "group-readable-other-gid",
        |r| {
            let p = r.join("etc/abguard/checks.d/api");
            std::os::unix::fs::chown(&p, None, Some(1000)).unwrap();
            mode(&p, 0o750);
        },
        None,
    ),
    (
        "dotfile-0777-is-no-check",
        |r| {
            let p = r.join("etc/abguard/checks.d/.swap");
            std::fs::write(&p, "").unwrap();
            mode(&p, 0o777);
        },
        None,
    ),
    (
        "not-executable-0666-is-no-check",
        |r| {
            let p = r.join("etc/abguard/checks.d/README");
            std::fs::write(&p, "").unwrap();
            mode(&p, 0o666);
        },
        None,
    ),
];

#[test]
fn checks_only_roots_own_run() {
    if !is_root() {
        eprintln!("hostile checks: skipped (needs root to set owners)");
        return;
    }
    for (name, setup, want) in CHECKS {
        let t = check_tree();
        setup(t.path());
        let args = ["config", "--check", "--root", &s(t.path())].map(String::from);
        let (o, _) = bounded(&args, &[]);
        let row = format!("checks/{name}");
        no_panic(&row, &o);
        match want {
            None => assert!(o.status.success(), "{row}: {}", stderr(&o)),
            Some(w) => {
                assert_eq!(o.status.code(), Some(1), "{row}: {}", stderr(&o));
                assert!(
                    stderr(&o).contains(w) && stderr(&o).contains(": refused"),
                    "{row}: {}",
                    stderr(&o)
                );
            }
        }
        println!("hostile {row}: ok");
    }
}

// ---- 2. the configuration parser ------------------------------------------------

/// (row, file bytes, the JSON value of DEADLINE after, an error that must be named
/// (or none), a warning that must be named (or none)).
type ConfRow = (
    &'static str,
    &'static [u8],
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const CONFIGS: &[ConfRow] = &[
    (
        "invalid-utf8-line-only",
        b"DEADLINE=5min\nMARK_GOOD=\xff\xfe\nSTABLE_FOR=10s\n",
        "5min",
        Some(":2: not UTF-8"),
        None,
    ),
    (
        "invalid-utf8-first-line",
        b"\xc3\x28=1\nDEADLINE=7min\n",
        "7min",
        Some(":1: not UTF-8"),
        None,
    ),
    (
        "duplicate-key-last-wins",
        b"DEADLINE=5min\nDEADLINE=7min\n",
        "7min",
        None,
        Some(":2: DEADLINE is also set on line 1: the last one wins"),
    ),
    (
        "duplicate-critical-units-merge",
        b"CRITICAL_UNITS=a.service\nCRITICAL_UNITS=b.service\nDEADLINE=5min\n",
        "5min",
        None,
        None,
    ),
    (
        "mismatched-double-quote",
        b"DEADLINE=\"5min\nSTABLE_FOR=0\n",
        "10min",
        Some(":1: the \" quote is never closed"),
        None,
    ),
    (
        "mismatched-single-quote",
        b"DEADLINE='5min\n",
        "10min",
        Some("quote is never closed"),
        None,
    ),
    (
        "text-after-quote",
        b"DEADLINE=\"5min\" 2h\n",
        "10min",
        Some("text after the closing \" quote"),
        None,
    ),
    (
        "quoted-span",
        b"DEADLINE=\"1h 30min\"\n",
        "1h 30min",
        None,
        None,
    ),
    (
        "single-quoted-span",
        b"DEADLINE='20min'\n",
        "20min",
        None,
        None,
    ),
    (
        "backslash-continuation",
        b"DEADLINE=1h \\\n30min\n",
        "1h 30min",
        None,
        None,
    ),
    (
        "continuation-inside-quotes",
        b"DEADLINE=\"1h \\\n30min\"\n",
        "1h 30min",
        None,
        None,
    ),
    (
        "escaped-quote-in-value",
        b"DEADLINE=\"5\\\"min\"\n",
        "10min",
        Some("DEADLINE="),
        None,
    ),
    (
        "crlf-line-endings",
        b"DEADLINE=5min\r\nMARK_GOOD=yes\r\n",
        "5min",
        None,
        None,
    ),
    (
        "nul-byte-in-value",
        b"DEADLINE=5\0min\n",
        "10min",
        Some(":1: DEADLINE="),
        None,
    ),
    (
        "utf8-bom",
        b"\xef\xbb\xbfDEADLINE=5min\n",
        "10min",
        Some("unknown key"),
        None,
    ),
    (
        "no-equals",
        b"DEADLINE 5min\n",
        "10min",
        Some("expected KEY=VALUE"),
        None,
    ),
    (
        "comment-and-blank",
        b"# DEADLINE=1min\n; x\n\n   \nDEADLINE=6min\n",
        "6min",
        None,
        None,
    ),
    ("empty-file", b"", "10min", None, None),
    (
        "only-garbage-bytes",
        b"\xff\xff\xff",
        "10min",
        Some("not UTF-8"),
        None,
    ),
];

#[test]
fn config_lines_keep_the_promise() {
    let t = tempfile::tempdir().unwrap();
    for (name, bytes, deadline, err, warn) in CONFIGS {
        let f = t.path().join(format!("{name}.conf"));
        std::fs::write(&f, bytes).unwrap();
        let (o, _) = bounded(&["config".into(), "--json".into(), s(&f)], &[]);
        let row = format!("config/{name}");
        no_panic(&row, &o);
        let v = json(&o);
        assert_eq!(v["deadline"], *deadline, "{row}: {v}");
        let errors: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str())
            .collect();
        let errors = errors.join("\n");
        match err {
            None => assert_eq!(
                v["errors"].as_array().map(Vec::len),
                Some(0),
                "{row}: {errors}"
            ),
            Some(e) => {
                assert!(errors.contains(e), "{row}: {errors}");
                assert_eq!(o.status.code(), Some(1), "{row}");
            }
        }
        if let Some(w) = warn {
            assert!(v["warnings"].to_string().contains(w), "{row}: {v}");
            assert!(stderr(&o).contains("warning: "), "{row}");
        }
        println!("hostile {row}: ok");
    }
}

#[test]
fn config_files_that_are_not_files_or_too_big() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let _sock = socket(&d.join("sock.conf"));
    let rows: Vec<(&str, PathBuf, &str)> = vec![
        (
            "fifo",
            {
                mkfifo(&d.join("fifo.conf"));
                d.join("fifo.conf")
            },
            "is a FIFO",
        ),
        ("socket", d.join("sock.conf"), "is a socket"),
        (
            "dev-zero",
            PathBuf::from("/dev/zero"),
            "is a character device",
        ),
        (
            "directory",
            {
                std::fs::create_dir(d.join("dir.conf")).unwrap();
                d.join("dir.conf")
            },
            "is a directory",
        ),
        (
            "300-mib",
            {
                sparse(&d.join("big.conf"), 300 << 20);
                d.join("big.conf")
            },
            "larger than",
        ),
        (
            "9-mib",
            {
                sparse(&d.join("nine.conf"), 9 << 20);
                d.join("nine.conf")
            },
            "larger than",
        ),
    ];
    for (name, p, want) in rows {
        let (o, took) = bounded(&["config".into(), "--check".into(), s(&p)], &[]);
        let row = format!("config-file/{name}");
        no_panic(&row, &o);
        assert_eq!(o.status.code(), Some(1), "{row}");
        assert!(stderr(&o).contains(want), "{row}: {}", stderr(&o));
        assert!(took < Duration::from_secs(3), "{row}: {took:?}");
        println!("hostile {row}: ok ({} ms)", took.as_millis());
    }
    // in a drop-in directory the others still apply
    let root = tempfile::tempdir().unwrap();
    let dd = root.path().join("etc/abguard/abguard.conf.d");
    std::fs::create_dir_all(&dd).unwrap();
    mkfifo(&dd.join("10-fifo.conf"));
    std::fs::write(dd.join("20-ok.conf"), "DEADLINE=3min\n").unwrap();
    let (o, _) = bounded(
        &[
            "config".into(),
            "--json".into(),
            "--root".into(),
            s(root.path()),
        ],
        &[],
    );
    no_panic("config-file/fifo-drop-in", &o);
    assert_eq!(json(&o)["deadline"], "3min");
    println!("hostile config-file/fifo-drop-in: ok");
}

#[test]
fn two_hundred_thousand_critical_units_are_linear() {
    let t = tempfile::tempdir().unwrap();
    for (name, sep) in [("one-line", " "), ("one-per-line", "\nCRITICAL_UNITS=")] {
        let units: Vec<String> = (0..200_000).map(|i| format!("u{i}.service")).collect();
        let f = t.path().join(format!("{name}.conf"));
        // the de-duplication on every insert is what was quadratic; on one line every
        // unit comes twice (a line a unit stays under the 8 MiB cap only once)
        let body = match name {
            "one-line" => format!(
                "CRITICAL_UNITS={}{sep}{}\n",
                units.join(sep),
                units.join(sep)
            ),
            _ => format!("CRITICAL_UNITS={}\n", units.join(sep)),
        };
        std::fs::write(&f, body).unwrap();
        let (o, took) = bounded(&["config".into(), "--json".into(), s(&f)], &[]);
        let row = format!("config/200k-units-{name}");
        no_panic(&row, &o);
        assert_eq!(
            json(&o)["critical_units"].as_array().unwrap().len(),
            200_000,
            "{row}"
        );
        assert!(took < Duration::from_secs(5), "{row}: {took:?}");
        println!("hostile {row}: ok ({} ms)", took.as_millis());
    }
}

// ---- 3. readers that never block or balloon ------------------------------------

enum Plant {
    Fifo,
    Dir,
    Sparse(u64),
    Socket,
}

fn plant(p: &Path, what: &Plant) -> Option<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    match what {
        Plant::Fifo => mkfifo(p),
        Plant::Dir => std::fs::create_dir(p).unwrap(),
        Plant::Sparse(n) => sparse(p, *n),
        Plant::Socket => return Some(socket(p)),
    }
    None
}

#[test]
fn special_files_where_records_are_read() {
    use Plant::*;
    let rows: Vec<(&str, &str, Plant, &[&str])> = vec![
        (
            "status/history-fifo",
            "sysroot/var/lib/abguard/attempts.jsonl",
            Fifo,
            &["status", "--json"],
        ),
        (
            "status/history-dir",
            "sysroot/var/lib/abguard/attempts.jsonl",
            Dir,
            &["status", "--json"],
        ),
        (
            "status/history-socket",
            "sysroot/var/lib/abguard/attempts.jsonl",
            Socket,
            &["status", "--json"],
        ),
        (
            "status/history-100mib",
            "sysroot/var/lib/abguard/attempts.jsonl",
            Sparse(100 << 20),
            &["status", "--json"],
        ),
        (
            "status/old-history-fifo",
            "sysroot/var/lib/abguard/attempts.jsonl.1",
            Fifo,
            &["status", "--json"],
        ),
        (
            "status/held-fifo",
            "sysroot/var/lib/abguard/held.json",
            Fifo,
            &["status", "--json"],
        ),
        (
            "status/held-10mib",
            "sysroot/var/lib/abguard/held.json",
            Sparse(10 << 20),
            &["status", "--json"],
        ),
        (
            "status/boot-json-fifo",
            "run/abguard/boot.json",
            Fifo,
            &["status", "--json"],
        ),
        (
            "status/boot-json-100mib",
            "run/abguard/boot.json",
            Sparse(100 << 20),
            &["status", "--json"],
        ),
        (
            "status/gate-json-fifo",
            "run/abguard/gate.json",
            Fifo,
            &["status"],
        ),
        (
            "status/config-error-fifo",
            "run/abguard/config-error",
            Fifo,
            &["status", "--prometheus"],
        ),
        (
            "status/os-release-fifo",
            "sysroot/usr/lib/os-release",
            Fifo,
            &["status", "--json"],
        ),
        (
            "initrd/history-fifo",
            "sysroot/var/lib/abguard/attempts.jsonl",
            Fifo,
            &["initrd"],
        ),
        (
            "initrd/held-fifo",
            "sysroot/var/lib/abguard/held.json",
            Fifo,
            &["initrd"],
        ),
        ("initrd/cmdline-fifo", "cmdline", Fifo, &["initrd"]),
        ("initrd/mountinfo-fifo", "mountinfo", Fifo, &["initrd"]),
        ("initrd/dm-status-fifo", "dm-status", Fifo, &["initrd"]),
        (
            "initrd/cmdline-10mib",
            "cmdline",
            Sparse(10 << 20),
            &["initrd"],
        ),
        (
            "guard-staged/kernel-fifo",
            "sysroot/boot/flatcar/vmlinuz-b",
            Fifo,
            &["guard-staged"],
        ),
        (
            "guard-staged/held-fifo",
            "sysroot/var/lib/abguard/held.json",
            Fifo,
            &["guard-staged"],
        ),
        (
            "gate-pass/sysexts-merged-fifo",
            "sysroot/var/lib/abguard/sysexts-merged",
            Fifo,
            &["gate-pass", "--no-reboot"],
        ),
        (
            "gate-pass/config-fifo",
            "sysroot/etc/abguard/abguard.conf",
            Fifo,
            &["gate-pass", "--no-reboot"],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let staged = staged_and_booted_b(dir.path());
    for (i, (name, rel, what, verb)) in rows.into_iter().enumerate() {
        let img = dir.path().join(format!("{i}.img"));
        std::fs::copy(&staged, &img).unwrap();
        if verb[0] == "guard-staged" {
            // B staged and not yet picked: the loop guard reads its kernel
            std::fs::copy(&sample().img, &img).unwrap();
            let o = abguard(&["stage", "--disk", &s(&img), "--partition", "4"]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        let m = machine_on_first_boot_of_b(&img);
        if verb[0] == "gate-pass" {
            assert_eq!(json(&m.initrd(&[]))["verdict"], "needs-health-check");
        }
        let _keep = plant(&m.p(rel), &what);
        let mut args: Vec<String> = verb.iter().map(|v| v.to_string()).collect();
        args.extend(m.probe_args());
        if verb[0] == "initrd" {
            args.extend(
                [
                    "--no-reboot",
                    "--json",
                    "--dm-status",
                    &s(&m.p("dm-status")),
                    "--dm-table",
                    &s(&m.p("dm-table")),
                ]
                .map(String::from),
            );
        }
        let env = [("ABGUARD_SYSTEMCTL", "/bin/true")];
        let stop = (verb[0] == "gate-pass").then_some(Duration::from_secs(3));
        let (o, took) = run_for(&args, &env, stop);
        let row = format!("reader/{name}");
        match stop {
            None => no_panic(&row, &o),
            Some(_) => assert!(!stderr(&o).contains("panicked"), "{row}"),
        }
        // the planted file is named (a hang, a panic or a silent read would not be)
        // (the test's own read: never of the FIFO it planted)
        let gate = match verb[0] {
            "gate-pass" => {
                std::fs::read_to_string(m.p("run/abguard/gate.json")).unwrap_or_default()
            }
            _ => String::new(),
        };
        let said = format!("{}{}{gate}", stdout(&o), stderr(&o));
        let leaf = Path::new(rel)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            said.contains(&leaf)
                || matches!(what, Sparse(_))
                || verb[0] == "initrd"
                || leaf == "os-release",
            "{row}: {said}"
        );
        assert!(took < Duration::from_secs(5), "{row}: {took:?}");
        println!("hostile {row}: ok ({} ms)", took.as_millis());
    }
}

#[test]
fn butane_inputs_that_are_not_files_or_too_big() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    mkfifo(&d.join("fifo"));
    std::fs::create_dir(d.join("dir")).unwrap();
    sparse(&d.join("big"), 9 << 20);
    std::fs::write(d.join("latin1"), b"[Unit]\nDescription=caf\xe9\n").unwrap();
    let rows: Vec<(&str, &str, String, &str)> = vec![
        (
            "unit-dev-zero",
            "--unit-file",
            "x.service=/dev/zero".into(),
            "character device",
        ),
        (
            "unit-fifo",
            "--unit-file",
            format!("x.service={}", s(&d.join("fifo"))),
            "FIFO",
        ),
        (
            "unit-dir",
            "--unit-file",
            format!("x.service={}", s(&d.join("dir"))),
            "directory",
        ),
        (
            "unit-9mib",
            "--unit-file",
            format!("x.service={}", s(&d.join("big"))),
            "larger than",
        ),
        (
            "unit-not-utf8",
            "--unit-file",
            format!("x.service={}", s(&d.join("latin1"))),
            "not UTF-8",
        ),
        (
            "check-dev-zero",
            "--check",
            "api=/dev/zero".into(),
            "character device",
        ),
        (
            "check-fifo",
            "--check",
            format!("api={}", s(&d.join("fifo"))),
            "FIFO",
        ),
        (
            "check-dev-urandom",
            "--check",
            "api=/dev/urandom".into(),
            "character device",
        ),
    ];
    for (name, opt, val, want) in rows {
        let (o, took) = bounded(
            &[
                "butane".into(),
                "--deadline".into(),
                "10min".into(),
                opt.into(),
                val,
            ],
            &[],
        );
        let row = format!("butane/{name}");
        no_panic(&row, &o);
        assert!(!o.status.success() && stdout(&o).is_empty(), "{row}");
        assert!(stderr(&o).contains(want), "{row}: {}", stderr(&o));
        assert!(took < Duration::from_secs(2), "{row}: {took:?}");
        println!("hostile {row}: ok ({} ms)", took.as_millis());
    }
}

// ---- 4. every write through SafeDir: a symlink at every component ---------------

/// Every file and directory under `d`, with its bytes (a directory: empty).
fn snapshot(d: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.push((p.clone(), Vec::new()));
            v.extend(snapshot(&p));
        } else {
            v.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    v.sort();
    v
}

#[test]
fn a_symlink_at_every_component_of_every_written_path() {
    // (row, verb, the component made a symlink into `outside`, what must exist first)
    let rows: &[(&str, &[&str], &str)] = &[
        ("initrd/run-abguard", &["initrd"], "run/abguard"),
        ("initrd/boot-json", &["initrd"], "run/abguard/boot.json"),
        (
            "initrd/needs-health-check",
            &["initrd"],
            "run/abguard/needs-health-check",
        ),
        ("initrd/sysroot-var", &["initrd"], "sysroot/var"),
        ("initrd/var-lib", &["initrd"], "sysroot/var/lib"),
        (
            "initrd/var-lib-abguard",
            &["initrd"],
            "sysroot/var/lib/abguard",
        ),
        (
            "initrd/attempts-jsonl",
            &["initrd"],
            "sysroot/var/lib/abguard/attempts.jsonl",
        ),
        (
            "gate-fail/gate-verdict",
            &["gate-fail", "--no-reboot"],
            "run/abguard/gate-verdict",
        ),
        (
            "gate-fail/held-json",
            &["gate-fail", "--no-reboot"],
            "sysroot/var/lib/abguard/held.json",
        ),
        (
            "gate-fail/attempts-jsonl",
            &["gate-fail", "--no-reboot"],
            "sysroot/var/lib/abguard/attempts.jsonl",
        ),
        (
            "gate-pass/gate-json",
            &["gate-pass", "--no-reboot"],
            "run/abguard/gate.json",
        ),
        (
            "gate-pass/checks-dir",
            &["gate-pass", "--no-reboot"],
            "run/abguard/checks",
        ),
        (
            "gate-pass/check-log",
            &["gate-pass", "--no-reboot"],
            "run/abguard/checks/port.log",
        ),
        (
            "gate-pass/healthy-flag",
            &["gate-pass", "--no-reboot"],
            "run/first-boot-healthy",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let staged = staged_and_booted_b(dir.path());
    for (i, (name, verb, link)) in rows.iter().enumerate() {
        let row = format!("symlink/{name}");
        let img = dir.path().join(format!("{i}.img"));
        std::fs::copy(&staged, &img).unwrap();
        let m = machine_on_first_boot_of_b(&img);
        if verb[0] != "initrd" {
            // the initrd's first-boot state, then the check and a short deadline
            assert_eq!(
                json(&m.initrd(&[]))["verdict"],
                "needs-health-check",
                "{row}"
            );
            let d = m.p("sysroot/etc/abguard/checks.d");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("port"), "#!/bin/sh\necho ok\n").unwrap();
            mode(&d.join("port"), 0o700);
            std::fs::write(m.p("sysroot/etc/abguard/abguard.conf"), "STABLE_FOR=0\n").unwrap();
        }
        let outside = m.p("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("bait"), "untouched\n").unwrap();
        let target = m.p(link);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_file(&target);
        // a directory component points at a directory, a file at a file
        let to = if link.ends_with(".json")
            || link.ends_with(".jsonl")
            || link.ends_with(".log")
            || link.ends_with("healthy")
            || link.ends_with("verdict")
            || link.ends_with("check")
        {
            outside.join("bait")
        } else {
            outside.join("sub")
        };
        std::os::unix::fs::symlink(&to, &target).unwrap();
        let before = snapshot(&outside);
        let mut args: Vec<String> = verb.iter().map(|v| v.to_string()).collect();
        args.extend(m.probe_args());
        if verb[0] == "initrd" {
            args.extend(
                [
                    "--no-reboot",
                    "--json",
                    "--dm-status",
                    &s(&m.p("dm-status")),
                    "--dm-table",
                    &s(&m.p("dm-table")),
                ]
                .map(String::from),
            );
        }
        let stop = (verb[0] == "gate-pass").then_some(Duration::from_secs(3));
        let (o, _) = run_for(&args, &[("ABGUARD_SYSTEMCTL", "/bin/true")], stop);
        if stop.is_none() {
            no_panic(&row, &o);
        }
        assert_eq!(
            snapshot(&outside),
            before,
            "{row}: a write landed outside: {}",
            stderr(&o)
        );
        println!("hostile {row}: ok");
    }
}

// ---- 5. no test hooks in release builds; counters saturate -----------------------

#[test]
fn the_failpoint_variable_is_a_test_build_hook_only() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let (o, _) = bounded(
        &["stage", "--disk", &s(&img), "--partition", "4"].map(String::from),
        &[(
            "ABGUARD_FAILPOINTS",
            "gpt-after-first-copy,gpt-between-array-and-header",
        )],
    );
    no_panic("failpoint/stage", &o);
    // make test's static binary is a release build: the variable does nothing there
    let release = std::env::var_os("ABGUARD_BIN").is_some();
    if release {
        assert!(
            o.status.success(),
            "the release binary obeyed ABGUARD_FAILPOINTS: {:?} {}",
            o.status,
            stderr(&o)
        );
        assert_eq!(stdout(&abguard(&["next", "--disk", &s(&img)])).trim(), "4");
        println!("hostile failpoint/release-ignores: ok");
    } else {
        assert_eq!(
            o.status.code(),
            Some(86),
            "the test build has its failpoints: {}",
            stderr(&o)
        );
        println!("hostile failpoint/test-build-stops: ok");
    }
}

#[test]
fn counters_saturate_at_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    let h = m.p("sysroot/var/lib/abguard");
    std::fs::create_dir_all(&h).unwrap();
    let max = u64::MAX;
    std::fs::write(
        h.join("attempts.jsonl"),
        format!("{{\"event\":\"assessment\",\"totals\":{{\"boots\":{max},\"first_boots\":{max},\"rollbacks\":{max}}}}}\n"),
    )
    .unwrap();
    let o = m.initrd(&[]);
    no_panic("counters/saturate", &o);
    let last = m.history().pop().unwrap();
    assert_eq!(last["totals"]["boots"].as_u64(), Some(max), "{last}");
    assert_eq!(last["totals"]["first_boots"].as_u64(), Some(max), "{last}");
    println!("hostile counters/saturate: ok");
}
