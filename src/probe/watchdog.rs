//! The watchdog devices sysfs lists (`/sys/class/watchdog/watchdogN`: identity,
//! max_timeout, bootstatus), for the hang budget and the next boot's explanation.

use crate::decide::watchdog::Device;
use std::path::Path;

/// Every watchdog device, in name order; unreadable attributes are absent.
pub fn devices(sysfs: &Path) -> Vec<Device> {
    let dir = sysfs.join("class/watchdog");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("watchdog") && n[8..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let attr = |a: &str| {
                std::fs::read_to_string(dir.join(&name).join(a))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            Device {
                identity: attr("identity").unwrap_or_default(),
                max_timeout: attr("max_timeout").and_then(|s| s.parse().ok()),
                bootstatus: attr("bootstatus").and_then(|s| s.parse().ok()),
                name,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_class_directory() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("class/watchdog");
        for (n, id, boot) in [
            ("watchdog1", "iTCO_wdt", "0"),
            ("watchdog0", "i6300ESB timer", "32"),
        ] {
            std::fs::create_dir_all(d.join(n)).unwrap();
            std::fs::write(d.join(n).join("identity"), format!("{id}\n")).unwrap();
            std::fs::write(d.join(n).join("bootstatus"), format!("{boot}\n")).unwrap();
        }
        std::fs::write(d.join("watchdog0/max_timeout"), "2046\n").unwrap();
        std::fs::create_dir_all(d.join("watchdogx")).unwrap();
        let got = devices(t.path());
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].name.as_str(), got[0].bootstatus, got[0].max_timeout),
            ("watchdog0", Some(32), Some(2046))
        );
        assert_eq!(
            (got[1].identity.as_str(), got[1].max_timeout),
            ("iTCO_wdt", None)
        );
        assert!(devices(&t.path().join("none")).is_empty());
    }
}
