//! Failpoints: named places where a test can make the process stop dead, as a power
//! cut would, e.g. `ABGUARD_FAILPOINTS=gpt-after-first-copy abguard next --disk d.img`.
//! Compiled only with the `failpoints` feature, which the tests turn on (Cargo.toml's
//! dev-dependency on this crate): a release binary has no test hooks and ignores the
//! variable (tests/hostile.rs proves it on the static binary).

/// Exit status of a process stopped at a failpoint, distinct from every real outcome.
#[cfg(feature = "failpoints")]
pub const EXIT_FAILPOINT: i32 = 86;

#[cfg(feature = "failpoints")]
fn armed() -> &'static [String] {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("ABGUARD_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// Stop here without unwinding, flushing or cleaning up when `name` is armed.
#[cfg(feature = "failpoints")]
pub fn point(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("abguard: failpoint {name} hit, stopping");
        std::process::exit(EXIT_FAILPOINT);
    }
}

/// Without the feature: nothing, and the name is not even in the binary.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn point(_name: &str) {}
