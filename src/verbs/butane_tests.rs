//! Unit tests of `butane` (beside it, to keep that file short).

use super::*;

fn args(argv: &[&str]) -> ButaneArgs {
    use clap::{FromArgMatches, Parser};
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ButaneArgs,
    }
    let m = <T as clap::CommandFactory>::command()
        .try_get_matches_from(std::iter::once("t").chain(argv.iter().copied()))
        .unwrap();
    T::from_arg_matches(&m).unwrap().a
}

#[test]
fn config_text_round_trips() {
    let a = args(&[
        "--critical-unit",
        "nginx.service",
        "--critical-unit",
        "docker.service",
        "--deadline",
        "1h 30min",
        "--mark-good",
        "--on-failure",
        "report",
    ]);
    let t = Settings::from_args(&a).unwrap().config_text().unwrap();
    assert_eq!(
        t.lines().skip(1).collect::<Vec<_>>(),
        [
            "CRITICAL_UNITS=nginx.service docker.service",
            "DEADLINE=1h 30min",
            "MARK_GOOD=yes",
            "ON_FAILURE=report"
        ]
    );
    // only the keys given: nothing else is overridden
    // the value is written normalized, as systemd prints it
    let t = Settings::from_args(&args(&["--deadline", "90s"]))
        .unwrap()
        .config_text()
        .unwrap();
    assert_eq!(t.lines().skip(1).collect::<Vec<_>>(), ["DEADLINE=1min 30s"]);
    // what the boot refuses, butane refuses, naming the option
    for (bad, opt) in [
        (&["--deadline", "0"][..], "--deadline"),
        (&["--stable-for", "2h"], "--stable-for"),
        (&["--check-timeout", "0"], "--check-timeout"),
        (
            &["--critical-unit", "a.service,b.service"],
            "--critical-unit",
        ),
        (&["--on-failure", "panic"], "--on-failure"),
    ] {
        let Err(e) = Settings::from_args(&args(bad)) else {
            panic!("{bad:?} accepted")
        };
        assert!(e.starts_with(&format!("invalid {opt} ")), "{bad:?}: {e}");
    }
}

#[test]
fn data_url_escapes_like_butane() {
    assert_eq!(
        data_url(b"A=b c.d_e~f-g\n#/"),
        "data:,A%3Db%20c.d_e~f-g%0A%23%2F"
    );
}

#[test]
fn yaml_text_literal_or_quoted() {
    assert_eq!(yaml_text("a\n\nb\n", 2), "|\n  a\n\n  b\n");
    // anything a literal block would change or reject is quoted
    for odd in [
        "no newline",
        "two\n\n",
        " lead\n",
        "tab\n\tx\n",
        "ws\n  \n",
        "é\n",
        "",
    ] {
        let y = yaml_text(odd, 2);
        assert!(y.starts_with('"'), "{odd:?} -> {y}");
    }
    assert_eq!(yaml_text("é\"\\\n", 2), "\"\\u00E9\\\"\\\\\\n\"\n");
}

#[test]
fn ignition_is_json_of_the_right_shape() {
    let units = [
        Unit {
            name: "a.service".into(),
            contents: "[Install]\nWantedBy=multi-user.target\n\"q\" \\ é\n".into(),
        },
        Unit {
            name: "b.service".into(),
            contents: "[Service]\n".into(),
        },
    ];
    for units in [&units[..], &[]] {
        let v: serde_json::Value =
            serde_json::from_str(&ignition("A=b\n", &[], units, &[])).unwrap();
        assert_eq!(v["ignition"]["version"], "3.3.0");
        let f = &v["storage"]["files"][0];
        assert_eq!(f["path"], DROPIN);
        assert_eq!(f["mode"], 420);
        assert_eq!(f["contents"]["source"], "data:,A%3Db%0A");
        assert_eq!(
            v["systemd"]["units"].as_array().map_or(0, Vec::len),
            units.len()
        );
        for (j, u) in v["systemd"]["units"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(units)
        {
            assert_eq!(j["name"], u.name.as_str());
            assert_eq!(j["contents"], u.contents.as_str());
            assert_eq!(j.get("enabled").is_some(), u.enabled());
        }
    }
}

#[test]
fn unit_enabled_only_with_install_section() {
    let u = |c: &str| Unit {
        name: "x.service".into(),
        contents: c.into(),
    };
    assert!(u("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n").enabled());
    assert!(!u("[Service]\nExecStart=/bin/true\n").enabled());
}

#[test]
fn kernel_budgets_only_when_asked() {
    // off by default: no kernel arguments, the OEM grub.cfg stays as it is
    let a = args(&["--deadline", "10min"]);
    assert!(a.kernel_arguments().unwrap().is_empty());
    assert!(!butane("A=b\n", &[], &[], &a.kernel_arguments().unwrap()).contains("kernel_arguments"));
    let v: serde_json::Value =
        serde_json::from_str(&ignition("A=b\n", &[], &[], &a.kernel_arguments().unwrap())).unwrap();
    assert!(v.get("kernelArguments").is_none());
    // asked for: both, and alone they are a valid invocation
    let a = args(&["--panic", "10", "--rd-earlytimeout", "60"]);
    let k = a.kernel_arguments().unwrap();
    assert_eq!(k, ["panic=10", "rd.earlytimeout=60"]);
    let y = butane("A=b\n", &[], &[], &k);
    assert!(
        y.ends_with(
            "kernel_arguments:\n  should_exist:\n    - panic=10\n    - rd.earlytimeout=60\n"
        ),
        "{y}"
    );
    let v: serde_json::Value = serde_json::from_str(&ignition("A=b\n", &[], &[], &k)).unwrap();
    assert_eq!(
        v["kernelArguments"]["shouldExist"],
        serde_json::json!(["panic=10", "rd.earlytimeout=60"])
    );
    // panic=0 would wait forever; a USR wait under 10 s fails slow disks
    for bad in [
        ["--panic", "0"],
        ["--panic", "601"],
        ["--rd-earlytimeout", "5"],
        ["--panic", "1m"],
    ] {
        let e = args(&bad).kernel_arguments().unwrap_err();
        assert!(e.starts_with(&format!("invalid {} ", bad[0])), "{e}");
    }
}
