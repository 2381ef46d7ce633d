//! What the health gate left under /run/abguard for `abguard status` and the metrics:
//! its snapshot (gate.json, rewritten while it waits) and the generator's configuration
//! errors (config-error, one a line).

use crate::act::flags::{CONFIG_ERROR, GATE_JSON, STATE_DIR};
use crate::safefs::cap::RECORD;
use std::path::Path;

/// The gate's snapshot under `run_dir`, while it is pending or once it decided.
pub fn read(run_dir: &Path) -> Option<serde_json::Value> {
    let b = crate::safefs::read_bounded(&run_dir.join(STATE_DIR).join(GATE_JSON), RECORD)
        .map_err(|e| log::warn!("{e:#}"))
        .ok()??;
    serde_json::from_slice(&b).ok()
}

/// How many configuration lines the generator skipped on this boot.
pub fn config_errors(run_dir: &Path) -> usize {
    crate::safefs::read_text(&run_dir.join(STATE_DIR).join(CONFIG_ERROR), RECORD)
        .map_err(|e| log::warn!("{e:#}"))
        .ok()
        .flatten()
        .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
}

/// How many checks in the gate's snapshot were refused (a count: no check output).
pub fn checks_refused(s: &serde_json::Value) -> usize {
    s["checks"].as_array().map_or(0, |c| {
        c.iter()
            .filter(|c| {
                c["result"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(": refused"))
            })
            .count()
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `abguard status`'s line for a pending gate: what it waits for, the window, the
/// deadline and the time left.
pub fn explain(s: &serde_json::Value) -> Option<String> {
    if s["state"] != "pending" {
        return None;
    }
    let str_of = |k: &str| s[k].as_str().unwrap_or("?").to_string();
    let waiting: Vec<&str> = s["waiting"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str())
        .collect();
    let mut t = format!(
        "health gate pending since {}: waiting for {}",
        str_of("since"),
        waiting.join("; ")
    );
    if let Some(w) = s["window_ends"].as_str() {
        t.push_str(&format!("; stable-for window ends at {w}"));
    }
    let left = s["deadline_unix"].as_i64().unwrap_or(0) - unix_now();
    let left = match left {
        l if l <= 0 => "passed".to_string(),
        l if l >= 120 => format!("in {} min", l / 60),
        l => format!("in {l} s"),
    };
    t.push_str(&format!("; deadline at {} ({left})", str_of("deadline")));
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_a_pending_gate_only() {
        let s = serde_json::json!({
            "state": "pending", "since": "T0",
            "waiting": ["nginx.service (activating/start, 0 restarts)"],
            "window_ends": null, "deadline": "T1", "deadline_unix": unix_now() + 420,
        });
        let t = explain(&s).unwrap();
        assert_eq!(
            t,
            "health gate pending since T0: waiting for nginx.service (activating/start, 0 restarts); deadline at T1 (in 7 min)"
        );
        assert!(explain(&serde_json::json!({"state": "passed"})).is_none());
    }
}
