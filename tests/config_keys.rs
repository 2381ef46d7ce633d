//! Each configuration key is defined once (config::keys::KEYS) and every consumer knows
//! it: the loader (a default that parses back), `abguard config`, `abguard butane` (an
//! option that writes it), the man page, the vendor defaults file and the table in docs/configuration.md.
//! A key added to the table but missing from any of them fails here.

mod common;
use abguard::config::keys::KEYS;
use common::*;

#[test]
fn every_key_reaches_every_consumer() {
    let config_out = stdout(&abguard(&["config", "--root", "/nonexistent"]));
    let man = std::fs::read_to_string(repo().join("man/abguard-config.8")).unwrap();
    let vendor = std::fs::read_to_string(repo().join("systemd/abguard.conf")).unwrap();
    let readme = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let help = stdout(&abguard(&["butane", "--help"]));
    let mut missing = Vec::new();
    for k in KEYS {
        let mut c = abguard::config::Config::default();
        if (k.set)(&mut c, k.default).is_err() {
            missing.push(format!(
                "{}: its default {:?} does not parse",
                k.name, k.default
            ));
        }
        if !config_out
            .lines()
            .any(|l| l == format!("{}={}  # default", k.name, k.default))
        {
            missing.push(format!(
                "{}: not in `abguard config` with its default",
                k.name
            ));
        }
        if !help.contains(&format!("--{}", k.butane)) {
            missing.push(format!("{}: abguard butane has no --{}", k.name, k.butane));
        }
        if !man.contains(&k.name.replace('_', "\\_")) && !man.contains(k.name) {
            missing.push(format!("{}: not in man/abguard-config.8", k.name));
        }
        if !vendor.lines().any(|l| {
            l.trim_start_matches('#')
                .starts_with(&format!("{}=", k.name))
        }) {
            missing.push(format!("{}: not in systemd/abguard.conf", k.name));
        }
        if !readme.contains(&format!("| `{}` |", k.name)) {
            missing.push(format!(
                "{}: not in the table of docs/configuration.md",
                k.name
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn config_check_validates_without_side_effects() {
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good.conf");
    let bad = t.path().join("bad.conf");
    std::fs::write(&good, "CRITICAL_UNITS=nginx.service\nDEADLINE=1h 30min\n").unwrap();
    std::fs::write(
        &bad,
        "DEADLINE=0\nCRITICAL_UNITS=a.service,b.service\nMARK_GOOD=yes\n",
    )
    .unwrap();
    let before: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let o = abguard(&["config", "--check", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = abguard(&[
        "config",
        "--check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("{}:1: DEADLINE=", bad.display())),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:2: CRITICAL_UNITS=", bad.display())),
        "{err}"
    );
    let o = abguard(&[
        "config",
        "--check",
        t.path().join("none.conf").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("none.conf: no such file"),
        "{}",
        stderr(&o)
    );
    let after: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(before, after, "--check wrote something");
    // the configuration under a root, as the boot reads it
    let root = t.path().join("root/etc/abguard");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&bad, root.join("abguard.conf")).unwrap();
    let o = abguard(&[
        "config",
        "--check",
        "--root",
        t.path().join("root").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("abguard.conf:1: DEADLINE="),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_boot_record_carries_config_errors_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    let etc = m.p("sysroot/etc/abguard");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("abguard.conf"),
        "CRITICAL_UNITS=a.service,b.service\n",
    )
    .unwrap();
    let rec = json(&m.initrd(&[]));
    assert_eq!(rec["verdict"], "needs-health-check");
    let e = rec["config_errors"][0].as_str().unwrap_or_default();
    assert!(
        e.contains("etc/abguard/abguard.conf:1: CRITICAL_UNITS="),
        "{rec}"
    );
}

/// `abguard config` says where each value came from, and warns when nothing is protected
/// or no file exists.
#[test]
fn config_names_each_values_origin_and_warns() {
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc/abguard");
    std::fs::create_dir_all(etc.join("abguard.conf.d")).unwrap();
    std::fs::write(
        etc.join("abguard.conf"),
        "CRITICAL_UNITS=a.service\nDEADLINE=5min\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("abguard.conf.d/10-x.conf"),
        "CRITICAL_UNITS=b.service\n",
    )
    .unwrap();
    let o = abguard(&["config", "--root", t.path().to_str().unwrap()]);
    let out = stdout(&o);
    let main = etc.join("abguard.conf").display().to_string();
    let drop = etc.join("abguard.conf.d/10-x.conf").display().to_string();
    assert!(
        out.contains(&format!(
            "CRITICAL_UNITS=a.service b.service  # from {main} + {drop}\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("DEADLINE=5min  # from {main}\n")),
        "{out}"
    );
    assert!(out.contains("STABLE_FOR=1min  # default\n"), "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = abguard(&["config", "--root", "/nonexistent"]);
    let err = stderr(&o);
    assert!(
        err.contains("warning: no configuration file under /nonexistent"),
        "{err}"
    );
    assert!(err.contains("warning: CRITICAL_UNITS is empty"), "{err}");
    let o = abguard(&["butane", "--deadline", "10min"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("warning: no --critical-unit"),
        "{}",
        stderr(&o)
    );
    let o = abguard(&["butane", "--critical-unit", "a.service"]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
