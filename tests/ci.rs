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
        make.contains("\ntest: deps build check\n"),
        "make test runs the quick tier"
    );
}
