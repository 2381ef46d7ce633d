//! pstore: the previous boot's kernel log, when the kernel kept one (ramoops, EFI).

use std::io::Read;
use std::path::Path;

/// The files under `SYSFS/fs/pstore`, by name: (name, contents), each read up to a
/// bound so a stray big file cannot cost the boot. None when pstore is not mounted.
pub fn read(sysfs: &Path) -> Vec<(String, String)> {
    let dir = sysfs.join("fs/pstore");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut files = Vec::new();
    for n in names {
        let mut text = Vec::new();
        let opened = crate::safefs::open_file(
            &dir.join(&n),
            false,
            crate::safefs::Kind::Regular,
            nix::fcntl::OFlag::empty(),
        );
        if let Ok(f) = opened {
            if f.take(256 * 1024).read_to_end(&mut text).is_ok() {
                files.push((n, String::from_utf8_lossy(&text).into_owned()));
            }
        }
    }
    files
}
