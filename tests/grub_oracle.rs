//! `abguard next` against Flatcar's real GRUB: the same image, with GRUB installed, is
//! booted under qemu into a GRUB-only config that runs `gptprio.next` and reboots, and
//! given to `abguard next`; the two images must be byte-identical, for a set of attribute
//! states on a disk as imaged and on one grown after imaging (backup header no longer in
//! the last sector).
//!
//! Needs Flatcar's GRUB build (../shared/vendor/flatcar-grub, docs/test-dependencies.md) and
//! qemu-system-x86_64. ABGUARD_FLATCAR_GRUB names the folder; when it is set (as .ci/run
//! does) a missing folder or qemu fails the test; when it is not set and the default
//! folder is absent, the test is skipped with a message.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const USR: &str = "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6";
/// Partition 2 (BIOS-BOOT, as on Flatcar) holds core.img from this LBA.
const CORE_LBA: u64 = 4096;
const MARKER: &str = "ABGUARD-GRUB-NEXT";

/// The GRUB tarball, or None (skip) when it is neither configured nor at the default place.
fn grub_tarball() -> Option<PathBuf> {
    let (dir, required) = match std::env::var_os("ABGUARD_FLATCAR_GRUB") {
        Some(d) => (PathBuf::from(d), true),
        None => (repo().join("../shared/vendor/flatcar-grub"), false),
    };
    let tar = dir.join("grub-2.06-flatcar-i386-pc.tar.xz");
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    match (tar.is_file(), qemu.is_ok()) {
        (true, true) => Some(tar),
        _ if required => panic!(
            "ABGUARD_FLATCAR_GRUB={} is set but {} or qemu-system-x86_64 is missing",
            dir.display(),
            tar.display()
        ),
        (t, q) => {
            skip(&format!(
                "GRUB oracle needs {} ({}) and qemu-system-x86_64 ({}); set ABGUARD_FLATCAR_GRUB (docs/test-dependencies.md)",
                tar.display(),
                if t { "found" } else { "absent" },
                if q { "found" } else { "absent" }
            ));
            None
        }
    }
}

/// core.img whose embedded config runs gptprio.next on hd0, prints the choice on the
/// serial console and reboots (qemu -no-reboot then exits).
fn build_core(tar: &Path, dir: &Path) -> Vec<u8> {
    run_ok("tar", &["-xJf", s(tar), "-C", s(dir)]);
    let cfg = dir.join("embed.cfg");
    std::fs::write(
        &cfg,
        format!(
            "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
             gptprio.next -d usr_device -u usr_uuid hd0\n\
             echo \"{MARKER} device=$usr_device uuid=$usr_uuid\"\nreboot\n"
        ),
    )
    .unwrap();
    let core = dir.join("core.img");
    let modules = dir.join("pc/lib/grub/i386-pc");
    run_ok(
        s(&dir.join("pc/bin/grub-mkimage")),
        &[
            "-O",
            "i386-pc",
            "-d",
            s(&modules),
            "-p",
            "(hd0,gpt1)/",
            "-c",
            s(&cfg),
            "-o",
            s(&core),
            "biosdisk",
            "part_gpt",
            "gpt",
            "gptprio",
            "serial",
            "terminal",
            "echo",
            "reboot",
        ],
    );
    std::fs::read(core).unwrap()
}

/// A Flatcar-shaped 8 MiB disk (EFI-SYSTEM 1, BIOS-BOOT 2, USR-A 3, USR-B 4, ROOT 9;
/// foreign attribute bits on both USR slots) with GRUB installed the way grub-bios-setup
/// does: core.img in BIOS-BOOT with its blocklist pointing there, boot.img's code in
/// sector 0 around the MBR's partition table.
fn base_image(dir: &Path, core: &[u8]) -> Vec<u8> {
    let img = dir.join("base.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    run_ok(
        "sgdisk",
        &[
            "-a",
            "1",
            "-n",
            "1:2048:4095",
            "-t",
            "1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "-c",
            "1:EFI-SYSTEM",
            "-n",
            "2:4096:6143",
            "-t",
            "2:21686148-6449-6E6F-744E-656564454649",
            "-c",
            "2:BIOS-BOOT",
            "-n",
            "3:6144:8191",
            "-t",
            &format!("3:{USR}"),
            "-c",
            "3:USR-A",
            "-u",
            &format!("3:{A_UUID}"),
            "-n",
            "4:8192:10239",
            "-t",
            &format!("4:{USR}"),
            "-c",
            "4:USR-B",
            "-u",
            &format!("4:{B_UUID}"),
            "-n",
            "9:10240:12287",
            "-t",
            "9:3884DD41-8582-4404-B9A8-E9B84F2DF50E",
            "-c",
            "9:ROOT",
            "-A",
            "3:set:2",
            "-A",
            "4:set:60",
            s(&img),
        ],
    );
    let mut b = std::fs::read(&img).unwrap();
    let mut core = core.to_vec();
    // diskboot.img's blocklist: the rest of core.img follows its first sector
    core[0x1f4..0x1fc].copy_from_slice(&(CORE_LBA + 1).to_le_bytes());
    let at = (CORE_LBA * 512) as usize;
    assert!(core.len() <= 2048 * 512, "core.img fits BIOS-BOOT");
    b[at..at + core.len()].copy_from_slice(&core);
    let boot = std::fs::read(dir.join("pc/lib/grub/i386-pc/boot.img")).unwrap();
    b[0..3].copy_from_slice(&boot[0..3]);
    b[0x5a..0x1b8].copy_from_slice(&boot[0x5a..0x1b8]);
    b[0x5c..0x64].copy_from_slice(&CORE_LBA.to_le_bytes());
    b
}

fn with_state(base: &[u8], a: Attrs, b: Attrs, grow: bool) -> Vec<u8> {
    let mut img = with_attrs(base, a, b);
    if grow {
        // `truncate -s +10M` after imaging: both copies stay where they were written
        img.resize(img.len() + (10 << 20), 0);
    }
    img
}

/// Boot GRUB on `img`; GRUB's `usr_device` (e.g. "hd0,gpt4"), empty when nothing was
/// bootable.
fn grub_next(img: &Path) -> String {
    let o = run(
        "timeout",
        &[
            "60",
            "qemu-system-x86_64",
            "-nographic",
            "-no-reboot",
            "-m",
            "64",
            "-drive",
            &format!("file={},format=raw,if=ide", img.display()),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    let line = out
        .lines()
        .find_map(|l| l.split_once(MARKER).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("GRUB did not reach gptprio.next: {out}\n{}", stderr(&o)));
    line.trim()
        .strip_prefix("device=")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("")
        .to_string()
}

fn diff_sectors(a: &[u8], b: &[u8]) -> Vec<usize> {
    a.chunks(512)
        .zip(b.chunks(512))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .take(20)
        .collect()
}

#[test]
fn next_writes_the_same_bytes_as_flatcar_grub() {
    let Some(tar) = grub_tarball() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let core = build_core(&tar, dir.path());
    let base = base_image(dir.path(), &core);
    let states: &[(Attrs, Attrs)] = &[
        ((1, 0, true), (2, 1, false)),  // B staged: its one try is spent
        ((1, 0, true), (2, 0, false)),  // B spent: A, nothing written
        ((2, 0, true), (1, 0, true)),   // A good with tries 0: nothing written
        ((1, 3, false), (1, 2, false)), // a tie: the lower partition number
        ((1, 1, true), (0, 0, false)),  // successful with tries left: a try is spent
        ((1, 0, true), (2, 15, false)), // tries 15
        ((0, 0, false), (0, 0, false)), // nothing bootable: no such partition
    ];
    // (grown, the copy whose header CRC is broken): a damaged copy is repaired only by
    // a write, which GRUB makes only when it spends a try, so only with a staged B
    let mut runs: Vec<(Attrs, Attrs, bool, Option<&str>)> = states
        .iter()
        .flat_map(|&(a, b)| [(a, b, false, None), (a, b, true, None)])
        .collect();
    let staged = states[0];
    runs.push((staged.0, staged.1, true, Some("backup")));
    runs.push((staged.0, staged.1, false, Some("primary")));
    runs.push((staged.0, staged.1, false, Some("backup")));
    let mut cases = 0;
    for (a, b, grow, damaged) in runs {
        let what = format!(
            "A {a:?} B {b:?}{}{}",
            if grow { " grown" } else { "" },
            damaged
                .map(|c| format!(", {c} damaged"))
                .unwrap_or_default()
        );
        let mut start = with_state(&base, a, b, grow);
        if let Some(copy) = damaged {
            // the backup where the primary says it is (before growing: the old end)
            let lba = if copy == "primary" {
                1
            } else {
                (8 << 20) / 512 - 1
            };
            start[lba * 512 + 16] ^= 0xff;
        }
        let (g, o) = (dir.path().join("grub.img"), dir.path().join("abguard.img"));
        std::fs::write(&g, &start).unwrap();
        std::fs::write(&o, &start).unwrap();
        let device = grub_next(&g);
        let out = abguard(&["next", "--json", "--disk", s(&o)]);
        let ours = if out.status.success() {
            format!("hd0,gpt{}", json(&out)["partition"])
        } else {
            String::new()
        };
        assert_eq!(ours, device, "{what}: choice ({})", stderr(&out));
        let (gi, oi) = (std::fs::read(&g).unwrap(), std::fs::read(&o).unwrap());
        assert!(
            gi == oi,
            "{what}: images differ in sectors {:?} (last sector {})",
            diff_sectors(&gi, &oi),
            gi.len() / 512 - 1
        );
        cases += 1;
    }
    println!(
        "{cases} states: abguard next byte-identical to Flatcar's GRUB gptprio.next, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
