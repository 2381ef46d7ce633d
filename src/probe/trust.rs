//! Whether a file is root's own: it and every directory from the root it was found
//! under down to it owned by uid 0 and writable by nobody else. A health check runs as
//! root at boot, so one that anyone else could have written is refused, as sshd's
//! StrictModes and sudo refuse such files. A symlink anywhere on the way is refused
//! too (not resolved): a link is how a check would reach a container volume or a
//! user's home, and refusing is simpler to reason about than confining resolution.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

/// Why `path` (below `root`) is not root's own; `None` when it is.
pub fn refusal(root: &Path, path: &Path) -> Option<String> {
    let rel = match path.strip_prefix(root) {
        Ok(r) => r,
        Err(_) => {
            return Some(format!(
                "{}: outside {}: refused",
                path.display(),
                root.display()
            ))
        }
    };
    let mut at = root.to_path_buf();
    if let Some(why) = judge(&at) {
        return Some(why);
    }
    for c in rel.components() {
        let Component::Normal(part) = c else {
            return Some(format!("{}: not a plain path: refused", path.display()));
        };
        at.push(part);
        if let Some(why) = judge(&at) {
            return Some(why);
        }
    }
    None
}

/// One component, not followed if it is a link.
fn judge(p: &Path) -> Option<String> {
    let m = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) => return Some(format!("{}: {e}: refused", p.display())),
    };
    let mode = m.mode() & 0o7777;
    let why = if m.file_type().is_symlink() {
        "a symlink (copy the check in, or call the program from a script)".to_string()
    } else if m.uid() != 0 {
        format!("owned by uid {}, not root", m.uid())
    } else if mode & 0o002 != 0 {
        format!("writable by others (mode {mode:04o})")
    } else if mode & 0o020 != 0 {
        format!("writable by group {} (mode {mode:04o})", m.gid())
    } else {
        return None;
    };
    Some(format!("{}: {why}: refused", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn every_component_is_judged() {
        // SAFETY: geteuid cannot fail
        if unsafe { nix::libc::geteuid() } != 0 {
            return; // ownership by root cannot be set up otherwise
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let dir = root.join("etc/abguard/checks.d");
        std::fs::create_dir_all(&dir).unwrap();
        for d in ["etc", "etc/abguard", "etc/abguard/checks.d"] {
            std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let check = dir.join("api");
        std::fs::write(&check, "#!/bin/sh\n").unwrap();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(&check, 0o700);
        assert_eq!(refusal(root, &check), None);
        mode(&check, 0o777);
        let why = refusal(root, &check).unwrap();
        assert!(
            why.ends_with("checks.d/api: writable by others (mode 0777): refused"),
            "{why}"
        );
        mode(&check, 0o770);
        assert!(refusal(root, &check).unwrap().contains("writable by group"));
        mode(&check, 0o700);
        mode(&dir, 0o1777);
        let why = refusal(root, &check).unwrap();
        assert!(
            why.contains("checks.d: writable by others (mode 1777)"),
            "{why}"
        );
        mode(&dir, 0o755);
        std::os::unix::fs::chown(&check, Some(65534), None).unwrap();
        assert!(refusal(root, &check)
            .unwrap()
            .contains("owned by uid 65534"));
        std::os::unix::fs::chown(&check, Some(0), None).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&check, &link).unwrap();
        assert!(refusal(root, &link).unwrap().contains("a symlink"));
        mode(root, 0o777);
        assert!(refusal(root, &check)
            .unwrap()
            .contains("writable by others"));
    }
}
