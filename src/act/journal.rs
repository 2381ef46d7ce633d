//! Journal entries with a MESSAGE_ID for the events an operator looks up later — a failed
//! gate, the initrd's rollback, a fallback, the emergency rollback — so `journalctl -x`
//! shows the explanation in systemd/abguard.catalog (installed into
//! /usr/lib/systemd/catalog). Sent as one datagram to journald's native socket under
//! the run directory; no journald (tests, an early initrd) means no entry, nothing else.

use std::path::Path;

/// A failed health gate (a critical unit, a check, the deadline, dm-verity, by hand).
pub const GATE_FAILED: &str = "ea9e65f7e617472982fdf335b53c2167";
/// The initrd's rollback of a first boot (dm-verity, a mismatched slot).
pub const INITRD_ROLLBACK: &str = "c7f9062c2af041ad8d799de6b458caef";
/// GRUB fell back from a first boot that reached no verdict.
pub const FALLBACK: &str = "91266efb74fc49068e1ce631ae51537e";
/// The initrd failed on a first boot; the emergency hook rolled back.
pub const EMERGENCY: &str = "b66a4392dc6c47cc94bfa8be763a1bfe";

/// Every id, for the test that holds the catalog to them.
pub const ALL: [&str; 4] = [GATE_FAILED, INITRD_ROLLBACK, FALLBACK, EMERGENCY];

/// journald's native socket, relative to /run.
const SOCKET: &str = "systemd/journal/socket";

/// The datagram: KEY=VALUE lines (values on one line; journald's simple format).
fn datagram(id: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let one = |v: &str| v.replace('\n', " ");
    let mut d = format!(
        "MESSAGE_ID={id}\nPRIORITY=3\nSYSLOG_IDENTIFIER=abguard\nMESSAGE={}\n",
        one(message)
    );
    for (k, v) in fields {
        d.push_str(&format!("ABGUARD_{k}={}\n", one(v)));
    }
    d
}

/// Log `message` at priority err with `id` and `fields` (ABGUARD_KEY=value each).
pub fn send(run_dir: &Path, id: &str, message: &str, fields: &[(&str, &str)]) {
    let sock = run_dir.join(SOCKET);
    if !sock.exists() {
        return;
    }
    if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
        if let Err(e) = s.send_to(datagram(id, message, fields).as_bytes(), &sock) {
            log::debug!("{}: {e}", sock.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_entry_with_its_id() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("systemd/journal")).unwrap();
        let rx = std::os::unix::net::UnixDatagram::bind(d.path().join(SOCKET)).unwrap();
        send(
            d.path(),
            GATE_FAILED,
            "gate failed:\nnginx",
            &[("SLOT", "USR-B")],
        );
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("MESSAGE_ID={GATE_FAILED}\nPRIORITY=3\nSYSLOG_IDENTIFIER=abguard\nMESSAGE=gate failed: nginx\nABGUARD_SLOT=USR-B\n")
        );
        // no journald: nothing, and no error
        send(&d.path().join("none"), GATE_FAILED, "x", &[]);
    }

    /// systemd/abguard.catalog has one entry per id, with what journalctl -x needs.
    #[test]
    fn the_catalog_explains_every_id() {
        let cat = include_str!("../../systemd/abguard.catalog");
        let entries: Vec<&str> = cat.split("\n-- ").skip(1).collect();
        assert_eq!(entries.len(), ALL.len(), "one entry per id");
        for id in ALL {
            assert!(id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()));
            let e = entries
                .iter()
                .find(|e| e.starts_with(id))
                .unwrap_or_else(|| panic!("no catalog entry for {id}"));
            for field in ["\nSubject: ", "\nDefined-By: abguard", "\nDocumentation: "] {
                assert!(e.contains(field), "{id}: no {field:?}");
            }
        }
    }
}
