//! `status --disk IMAGE` describes the image, not the machine running it: the host's
//! boot record and history are hidden unless `--run-dir`/`--sysroot` point at them.
//! The host state is faked in a private mount namespace (tmpfs over /run and /var/lib).
mod common;
use common::*;

/// Run `abguard ARGS` with a fake host boot record and history; `None` when this
/// machine cannot make a mount namespace (not root, no unshare).
fn with_fake_host(args: &[&str]) -> Option<std::process::Output> {
    let script = r#"set -e
mount -t tmpfs none /run
mount -t tmpfs none /var/lib
mkdir -p /run/abguard /var/lib/abguard
echo '{"event":"initrd","verdict":"HOST-VERDICT","reasons":["host"]}' > /run/abguard/boot.json
echo '{"event":"gate-passed","verdict":"HOST-HISTORY","totals":{"rollbacks":7}}' > /var/lib/abguard/attempts.jsonl
exec "$@""#;
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(bin())
        .args(args)
        .output()
        .ok()?;
    if stderr(&o).contains("unshare:") || stderr(&o).contains("mount:") {
        skip(&format!("no mount namespace: {}", stderr(&o)));
        return None;
    }
    Some(o)
}

#[test]
fn status_of_an_image_never_shows_the_hosts_state() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let img = img.to_str().unwrap();
    let Some(o) = with_fake_host(&["status", "--disk", img, "--json"]) else {
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert!(j["last_assessment"].is_null(), "{j}");
    assert_eq!(j["history"], serde_json::json!([]), "{j}");
    let o = with_fake_host(&["status", "--disk", img, "--prometheus"]).unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.contains("HOST-"), "{text}");
    assert!(text.contains("abguard_rollbacks_total 0"), "{text}");
    // named explicitly, the same state is shown
    let o = with_fake_host(&[
        "status",
        "--disk",
        img,
        "--json",
        "--run-dir",
        "/run",
        "--sysroot",
        "/",
    ])
    .unwrap();
    let j = json(&o);
    assert_eq!(j["last_assessment"]["verdict"], "HOST-VERDICT", "{j}");
    assert_eq!(j["history"][0]["verdict"], "HOST-HISTORY", "{j}");
}
