//! What CI runs: .ci/run lints before it tests and sets `CI`; the lint covers rustfmt,
//! clippy on both feature sets and shellcheck; and the one skip policy
//! (tests/common/mod.rs `skip`): a test that lacks a prerequisite passes with a SKIPPED
//! line outside CI, and fails when `CI` is set.

mod common;
use std::process::Command;

const PROBE: &str = "ABGUARD_SKIP_POLICY_PROBE";

#[test]
fn a_skip_passes_loudly_and_fails_under_ci() {
    if std::env::var_os(PROBE).is_some() {
        common::skip("the policy's own probe");
        return;
    }
    let run = |ci: bool| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["a_skip_passes_loudly_and_fails_under_ci", "--exact"])
            .env(PROBE, "1")
            .env_remove("CI");
        if ci {
            c.env("CI", "1");
        }
        c.output().unwrap()
    };
    let o = run(false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("SKIPPED: the policy's own probe"), "{err}");
    let o = run(true);
    assert!(!o.status.success(), "a skip under CI must fail");
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::repo().join(rel)).unwrap()
}

#[test]
fn ci_lints_first_and_sets_ci() {
    let run = read(".ci/run");
    let at = |s: &str| {
        run.find(s)
            .unwrap_or_else(|| panic!(".ci/run does not run {s}"))
    };
    assert!(
        at("make lint") < at("make test"),
        "the lint runs after the tests"
    );
    assert!(
        at("./ci/install-deps.sh") < at("make lint"),
        "the lint's tools are not installed first"
    );
    assert!(run.contains("export CI="), ".ci/run does not set CI");
    let lint = read("ci/lint.sh");
    for step in [
        "fmt --check",
        "clippy --locked --all-targets -- -D warnings",
        "clippy --locked --all-targets --features cryptsetup -- -D warnings",
        "shellcheck -S warning",
    ] {
        assert!(lint.contains(step), "ci/lint.sh does not run {step}");
    }
    let make = read("Makefile");
    assert!(
        make.contains("\ncheck:\n\t$(CARGO) test --locked\n"),
        "make check"
    );
    assert!(
        make.contains("\ntest: deps size check\n"),
        "make test runs the size check and the quick tier"
    );
    // the static binary's size goal fails the test tier, not just `make`'s printout
    assert!(
        make.contains("\nsize: build\n\t./tests/size.sh $(BIN)\n"),
        "make size checks the built binary"
    );
}

/// images/layout.sh is the one copy of Flatcar's GUIDs for the shell scripts; it agrees
/// with the binary's (the USR type, USR-A's PARTUUID) and the tests' constants.
#[test]
fn the_shell_layout_is_the_binarys() {
    let text = read("images/layout.sh");
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("images/layout.sh has no {k}"))
            .to_ascii_lowercase()
    };
    assert_eq!(
        get("USR_A_PARTUUID"),
        abguard::probe::verity::USR_A_PARTUUID
    );
    assert_eq!(get("USR_A_PARTUUID"), common::A_UUID);
    assert_eq!(get("USR_B_PARTUUID"), common::B_UUID);
    let usr = get("T_USR");
    let gpt = read("src/disk/gpt.rs");
    assert!(
        gpt.contains(&format!(
            "pub const USR_TYPE: [u8; 16] = guid_bytes(\"{usr}\");"
        )),
        "T_USR {usr} is not src/disk/gpt.rs's USR_TYPE"
    );
    for script in ["images/mkimage.sh", "tests/vm/lib.sh"] {
        let s = read(script);
        assert!(
            s.contains("layout.sh\""),
            "{script} does not source images/layout.sh"
        );
        assert!(
            !s.contains(&usr.to_ascii_uppercase()),
            "{script} spells the USR type itself"
        );
    }
}
