//! Failpoints: named places where a test can make the process stop dead, as a power
//! cut would, e.g. `ABGUARD_FAILPOINTS=gpt-after-first-copy abguard next --disk d.img`.

use std::sync::OnceLock;

/// Exit status of a process stopped at a failpoint, distinct from every real outcome.
pub const EXIT_FAILPOINT: i32 = 86;

fn armed() -> &'static [String] {
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
pub fn point(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("abguard: failpoint {name} hit, stopping");
        std::process::exit(EXIT_FAILPOINT);
    }
}
