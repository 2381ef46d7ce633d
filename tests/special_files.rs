//! A FIFO, socket, character device or directory where a disk, a configuration file or
//! a device to read is expected: refused at once with an error naming it (exit 1),
//! never a hang, never a read error that looks like a verification failure.
mod common;
use common::*;
use std::process::{Command, Output};

/// abguard under `timeout`, so the old behaviour (blocking on a FIFO) fails the test
/// instead of hanging it.
fn bounded(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("10")
        .arg(bin())
        .args(args)
        .output()
        .expect("running timeout abguard")
}

fn mkfifo(p: &std::path::Path) {
    run_ok("mkfifo", &[p.to_str().unwrap()]);
}

fn refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(stderr(o).contains(what), "{}", stderr(o));
}

#[test]
fn a_fifo_or_device_as_the_disk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("disk");
    mkfifo(&fifo);
    for verb in [
        &["status"][..],
        &["next", "--dry-run"],
        &["stage", "--partition", "4"],
    ] {
        let mut args = verb.to_vec();
        args.extend(["--disk", fifo.to_str().unwrap()]);
        refused(
            &bounded(&args),
            "is a FIFO, not a block device or an image file",
        );
    }
    refused(
        &bounded(&["status", "--disk", "/dev/null"]),
        "/dev/null is a character device",
    );
}

#[test]
fn a_fifo_as_a_config_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/abguard/abguard.conf.d");
    std::fs::create_dir_all(&etc).unwrap();
    mkfifo(&etc.join("10-fifo.conf"));
    let r = root.path().to_str().unwrap();
    refused(&bounded(&["config", "--root", r]), "10-fifo.conf is a FIFO");
    std::fs::remove_file(etc.join("10-fifo.conf")).unwrap();
    mkfifo(&root.path().join("etc/abguard/abguard.conf"));
    refused(&bounded(&["config", "--root", r]), "abguard.conf is a FIFO");
}

#[test]
fn read_usr_usage_errors_exit_1_not_4() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("usr");
    mkfifo(&fifo);
    let d = dir.path().to_str().unwrap();
    refused(&bounded(&["read-usr", "--device", d]), "is a directory");
    refused(
        &bounded(&["read-usr", "--device", fifo.to_str().unwrap()]),
        "is a FIFO",
    );
    refused(
        &bounded(&["read-usr", "--device", "/dev/zero"]),
        "is a character device",
    );
    let missing = dir.path().join("missing");
    let o = bounded(&["read-usr", "--device", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
