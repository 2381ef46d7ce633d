//! `abguard verify` on real dm-verity USR slots built by images/mkimage.sh, with
//! `veritysetup verify` (the same libcryptsetup, through its own front end) as the oracle
//! for which block fails; `verify --staged --unstage-on-failure` on a disk image; and
//! `abguard read-usr` on plain files. The libcryptsetup tests need the `cryptsetup`
//! feature (`cargo test --features cryptsetup --test verify`); without it, the test is
//! that verify refuses clearly.

mod common;
use common::*;

#[cfg(not(feature = "cryptsetup"))]
#[test]
fn without_cryptsetup_verify_says_so() {
    let s = sample();
    // as in the initrd: no userspace build (/usr/lib/abguard/abguard-cryptsetup) to hand to
    let o = std::process::Command::new(bin())
        .args([
            "verify",
            "--disk",
            s.img.to_str().unwrap(),
            "--partition",
            "3",
        ])
        .env("ABGUARD_NO_DELEGATE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("built without the `cryptsetup` feature"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn read_usr_reads_a_whole_file() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("usr.img");
    // not a multiple of the read size
    let mut data = vec![0u8; (9 << 20) + 4096];
    let mut r = Rng(7);
    for b in data.iter_mut().step_by(4096) {
        *b = r.next() as u8;
    }
    std::fs::write(&f, &data).unwrap();
    for extra in [&[][..], &["--direct"][..], &["--block-size", "64K"][..]] {
        let mut args = vec!["read-usr", "--device", f.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let o = abguard(&args);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
        let j = json(&o);
        assert_eq!(j["result"], "ok", "{extra:?}");
        assert_eq!(j["bytes_read"], data.len(), "{extra:?}");
        assert_eq!(j["size"], data.len(), "{extra:?}");
    }
    let o = abguard(&["read-usr", "--device", "/nonexistent/usr"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/usr"), "{}", stderr(&o));
    let o = abguard(&[
        "read-usr",
        "--device",
        f.to_str().unwrap(),
        "--block-size",
        "1000",
    ]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[cfg(feature = "cryptsetup")]
mod with_cryptsetup {
    use super::*;
    use std::path::{Path, PathBuf};

    /// An image of its own (state, options), for the cases the shared sample does not cover.
    struct Image {
        _dir: tempfile::TempDir,
        img: PathBuf,
        env: String,
    }

    impl Image {
        fn new(args: &[&str]) -> Image {
            let dir = tempfile::tempdir().unwrap();
            let img = dir.path().join("disk.img");
            let mut a = vec!["-q"];
            a.extend_from_slice(args);
            a.push(img.to_str().unwrap());
            run_ok(repo().join("images/mkimage.sh").to_str().unwrap(), &a);
            let env = std::fs::read_to_string(dir.path().join("disk.env")).unwrap();
            Image {
                _dir: dir,
                img,
                env,
            }
        }
        fn var(&self, key: &str) -> u64 {
            self.s(key).parse().unwrap()
        }
        fn s(&self, key: &str) -> String {
            self.env
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing"))
                .to_string()
        }
    }

    fn flip(img: &Path, at: u64) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(img)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
    }

    /// The kernels of the image's ESP (flatcar/vmlinuz-a|b, root hash at 0x40) under
    /// SYSROOT/boot, as a booted Flatcar has them.
    fn sysroot_with_kernels(dir: &Path, img: &Path, efi_start: u64) -> PathBuf {
        let root = dir.join("sysroot");
        let boot = root.join("boot/flatcar");
        std::fs::create_dir_all(&boot).unwrap();
        for k in ["vmlinuz-a", "vmlinuz-b"] {
            let o = std::process::Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-n", "-i"])
                .arg(format!("{}@@{efi_start}", img.display()))
                .arg(format!("::flatcar/{k}"))
                .arg(boot.join(k))
                .output()
                .expect("mtools (mcopy) is needed for this test; run ./ci/install-deps.sh");
            assert!(o.status.success(), "mcopy {k}: {}", stderr(&o));
        }
        root
    }

    /// Partition `n` of `img` as its own file, for veritysetup.
    fn extract(img: &Path, start: u64, size: u64, out: &Path) {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(img).unwrap();
        f.seek(SeekFrom::Start(start)).unwrap();
        let mut buf = vec![0u8; size as usize];
        f.read_exact(&mut buf).unwrap();
        std::fs::write(out, buf).unwrap();
    }

    /// What `veritysetup verify` says: (exit code, "Verification failed at position N").
    fn oracle(part: &Path, offset: u64, hash: &str) -> (i32, Option<u64>) {
        let o = run(
            "veritysetup",
            &[
                "verify",
                &format!("--hash-offset={offset}"),
                part.to_str().unwrap(),
                part.to_str().unwrap(),
                hash,
            ],
        );
        let pos = stderr(&o)
            .lines()
            .find_map(|l| l.split("Verification failed at position ").nth(1))
            .and_then(|r| r.trim_end_matches('.').parse().ok());
        (o.status.code().unwrap_or(-1), pos)
    }

    fn verify(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
        let mut a = vec!["verify", "--json"];
        a.extend_from_slice(args);
        let o = abguard(&a);
        let err = stderr(&o);
        let j = if o.stdout.is_empty() {
            serde_json::Value::Null
        } else {
            json(&o)
        };
        (o.status.code(), j, err)
    }

    #[test]
    fn clean_slots_verify_against_given_and_kernel_hashes() {
        let s = sample();
        let t = tempfile::tempdir().unwrap();
        let img = s.img.to_str().unwrap();
        let offset: u64 = s.var("HASH_OFFSET").parse().unwrap();
        for (n, slot) in [("3", "A"), ("4", "B")] {
            let hash = s.var(&format!("USR_{slot}_ROOTHASH"));
            let (code, j, err) = verify(&["--disk", img, "--partition", n, "--root-hash", &hash]);
            assert_eq!(code, Some(0), "{n}: {err} {j}");
            assert_eq!(j["result"], "verified");
            assert_eq!(j["label"], format!("USR-{slot}"));
            assert_eq!(j["hash_offset"], offset);
            assert_eq!(j["hash_offset_from"], "fs-blocks-rule");
            assert_eq!(j["data_blocks"].to_string(), s.var("FS_BLOCKS"));
            assert_eq!(j["hash_algorithm"], "sha256");
        }
        // the root hash from the slot's kernel, as GRUB reads it
        let root = sysroot_with_kernels(t.path(), &s.img, s.var("EFI_START").parse().unwrap());
        for (n, k) in [("3", "vmlinuz-a"), ("4", "vmlinuz-b")] {
            let (code, j, err) = verify(&[
                "--disk",
                img,
                "--partition",
                n,
                "--sysroot",
                root.to_str().unwrap(),
            ]);
            assert_eq!(code, Some(0), "{n}: {err}");
            assert!(j["root_hash_from"].as_str().unwrap().ends_with(k), "{j}");
        }
        // --kernel, --hash-offset and --device (a partition image) given explicitly
        let part = t.path().join("usr-a.part");
        extract(
            &s.img,
            s.var("USR_A_START").parse().unwrap(),
            s.var("USR_A_SIZE").parse().unwrap(),
            &part,
        );
        let (code, j, err) = verify(&[
            "--device",
            part.to_str().unwrap(),
            "--kernel",
            root.join("boot/flatcar/vmlinuz-a").to_str().unwrap(),
            "--hash-offset",
            &offset.to_string(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(j["hash_offset_from"], "given");
        assert_eq!(j["device"], part.to_str().unwrap());
        assert_eq!(j["partition"], serde_json::Value::Null, "no table was read");
        // the wrong slot's kernel: caught as a wrong root hash
        let (code, j, _) = verify(&[
            "--device",
            part.to_str().unwrap(),
            "--kernel",
            root.join("boot/flatcar/vmlinuz-b").to_str().unwrap(),
        ]);
        assert_eq!((code, j["result"].as_str()), (Some(4), Some("wrong-hash")));
    }

    /// Flatcar's arm64 kernels carry the root hash at byte 512, after the EFI stub's
    /// headers, not at 0x40: verify reads each slot's own kernel from an arm64 image (on
    /// this x86-64 host, as a build machine checking an arm64 image would).
    #[test]
    fn arm64_kernels_carry_the_root_hash_at_512() {
        let im = Image::new(&[
            "--arch",
            "arm64",
            "--version-a",
            "9998.0.0",
            "--version-b",
            "9999.0.0",
        ]);
        let t = tempfile::tempdir().unwrap();
        let root = sysroot_with_kernels(t.path(), &im.img, im.var("EFI_START"));
        for (n, slot, k) in [("3", "A", "vmlinuz-a"), ("4", "B", "vmlinuz-b")] {
            let kernel = std::fs::read(root.join("boot/flatcar").join(k)).unwrap();
            let hash = im.s(&format!("USR_{slot}_ROOTHASH"));
            assert_eq!(&kernel[0x38..0x3c], b"ARM\x64", "an arm64 Image header");
            assert_eq!(&kernel[512..576], hash.as_bytes());
            assert_ne!(
                &kernel[0x40..0x80],
                hash.as_bytes(),
                "not where amd64 has it"
            );
            let (code, j, err) = verify(&[
                "--disk",
                im.img.to_str().unwrap(),
                "--partition",
                n,
                "--sysroot",
                root.to_str().unwrap(),
            ]);
            assert_eq!(code, Some(0), "{n}: {err} {j}");
            assert_eq!(j["result"], "verified");
            assert_eq!(j["root_hash"], hash.as_str(), "{j}");
        }
    }

    #[test]
    fn flipped_bytes_are_caught_with_the_block_named() {
        let s = sample();
        let offset: u64 = s.var("HASH_OFFSET").parse().unwrap();
        let a_start: u64 = s.var("USR_A_START").parse().unwrap();
        let a_size: u64 = s.var("USR_A_SIZE").parse().unwrap();
        let hash = s.var("USR_A_ROOTHASH");
        // (how, expected area, expected block)
        let cases: [(&str, &str, u64); 4] = [
            ("usr-a-data", "data", 0),    // corrupt.sh: byte 256 of block 0
            ("block 1000", "data", 1000), // one byte in the middle of the filesystem
            (
                "last data block",
                "data",
                s.var("FS_BLOCKS").parse::<u64>().unwrap() - 1,
            ),
            ("usr-a-hash", "hash-tree", 2), // corrupt.sh: the top hash block → its child fails
        ];
        for (how, area, block) in cases {
            let t = tempfile::tempdir().unwrap();
            let img = copy(t.path(), "disk.img");
            std::fs::copy(s.img.with_extension("env"), t.path().join("disk.env")).unwrap();
            match how {
                "block 1000" => flip(&img, a_start + 1000 * 4096 + 77),
                "last data block" => flip(&img, a_start + offset - 1),
                kind => {
                    run_ok(
                        repo().join("images/corrupt.sh").to_str().unwrap(),
                        &[img.to_str().unwrap(), kind],
                    );
                }
            }
            let (code, j, err) = verify(&[
                "--disk",
                img.to_str().unwrap(),
                "--partition",
                "3",
                "--root-hash",
                &hash,
            ]);
            assert_eq!(code, Some(4), "{how}: {err}");
            assert_eq!(j["result"], "corrupted", "{how}: {j}");
            assert_eq!(j["area"], area, "{how}: {j}");
            assert_eq!(j["block"], block, "{how}: {j}");
            assert!(err.contains("corrupted"), "{how}: logged: {err}");
            // veritysetup verify, the reference front end, names the same position
            let part = t.path().join("a.part");
            extract(&img, a_start, a_size, &part);
            let (vcode, vpos) = oracle(&part, offset, &hash);
            assert_ne!(vcode, 0, "{how}: veritysetup accepted it");
            assert_eq!(Some(j["failed_at"].as_u64().unwrap()), vpos, "{how}");
            // the message names the block
            let msg = j["message"].as_str().unwrap();
            let named = if area == "data" {
                format!("data block {block} ")
            } else {
                format!("hash-tree block {block} ")
            };
            assert!(msg.contains(&named), "{how}: {msg}");
        }
    }

    #[test]
    fn wrong_hash_and_missing_tree() {
        let s = sample();
        let img = s.img.to_str().unwrap();
        let (code, j, _) = verify(&[
            "--disk",
            img,
            "--partition",
            "3",
            "--root-hash",
            &s.var("USR_B_ROOTHASH"),
        ]);
        assert_eq!((code, j["result"].as_str()), (Some(4), Some("wrong-hash")));
        assert!(j["libcryptsetup"].to_string().contains("root hash"), "{j}");
        // a hash offset with nothing there
        let (code, j, _) = verify(&[
            "--disk",
            img,
            "--partition",
            "3",
            "--root-hash",
            &s.var("USR_A_ROOTHASH"),
            "--hash-offset",
            "4096",
        ]);
        assert_eq!(
            (code, j["result"].as_str()),
            (Some(4), Some("no-hash-tree"))
        );
        // plain filesystems: no superblock anywhere
        let plain = Image::new(&["--no-verity", "--version-a", "1.0.0"]);
        let (code, j, _) = verify(&[
            "--disk",
            plain.img.to_str().unwrap(),
            "--partition",
            "3",
            "--root-hash",
            &s.var("USR_A_ROOTHASH"),
        ]);
        assert_eq!(
            (code, j["result"].as_str()),
            (Some(4), Some("no-hash-tree"))
        );
        assert_eq!(j["hash_offset"], serde_json::Value::Null);
        // not hex, not a USR partition, an empty slot's missing kernel: errors, not verdicts
        let (code, _, err) = verify(&["--disk", img, "--partition", "3", "--root-hash", "xyz"]);
        assert_eq!(code, Some(1), "{err}");
        let (code, _, err) = verify(&["--disk", img, "--partition", "9", "--root-hash", "00"]);
        assert_eq!(code, Some(3), "{err}");
        let t = tempfile::tempdir().unwrap();
        let (code, _, err) = verify(&[
            "--disk",
            img,
            "--partition",
            "4",
            "--sysroot",
            t.path().to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1));
        assert!(err.contains("boot/flatcar/vmlinuz-b"), "{err}");
    }

    #[test]
    fn default_slot_is_the_staged_one() {
        let s = sample(); // fresh: A good, B not staged
        let (code, _, err) = verify(&["--disk", s.img.to_str().unwrap(), "--root-hash", "00"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("no staged USR slot"), "{err}");
        let (code, j, _) = verify(&["--disk", s.img.to_str().unwrap(), "--staged"]);
        assert_eq!(
            (code, j["result"].as_str()),
            (Some(0), Some("nothing-staged"))
        );
        let staged = Image::new(&[
            "--version-a",
            "1.0.0",
            "--version-b",
            "2.0.0",
            "--state",
            "staged-b",
        ]);
        let (code, j, err) = verify(&[
            "--disk",
            staged.img.to_str().unwrap(),
            "--root-hash",
            &staged.s("USR_B_ROOTHASH"),
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(j["partition"], 4);
    }

    fn gpt(img: &Path) -> String {
        let a = cgpt_attrs(img, 3);
        let b = cgpt_attrs(img, 4);
        format!(
            "A(P{} T{} S{}) B(P{} T{} S{})",
            a.0, a.1, a.2 as u8, b.0, b.1, b.2 as u8
        )
    }

    #[test]
    fn a_corrupt_staged_update_is_unstaged_before_the_reboot() {
        let im = Image::new(&[
            "--version-a",
            "1.0.0",
            "--version-b",
            "2.0.0",
            "--state",
            "staged-b",
        ]);
        let t = tempfile::tempdir().unwrap();
        let root = sysroot_with_kernels(t.path(), &im.img, im.var("EFI_START"));
        let img = im.img.to_str().unwrap();
        let base = [
            "--disk",
            img,
            "--sysroot",
            root.to_str().unwrap(),
            "--staged",
            "--unstage-on-failure",
        ];
        // a clean staged update: verified, nothing written, nothing recorded
        let before = gpt(&im.img);
        assert_eq!(before, "A(P1 T0 S1) B(P2 T1 S0)");
        let (code, j, err) = verify(&base);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(j["result"], "verified");
        assert_eq!(gpt(&im.img), before);
        assert!(!root.join("var/lib/abguard/attempts.jsonl").exists());

        // one byte of B's /usr flipped after it was hashed (a bad download or write)
        let block = 2345u64;
        flip(&im.img, im.var("USR_B_START") + block * 4096 + 99);
        let (code, j, err) = verify(&base);
        assert_eq!(code, Some(4), "{err}");
        assert_eq!(
            (j["result"].as_str(), j["block"].as_u64()),
            (Some("corrupted"), Some(block))
        );
        assert!(err.contains("un-staged USR-B"), "journal: {err}");
        // B gets tries=0 successful=0 (its priority stays), A keeps its priority and stays good
        assert_eq!(gpt(&im.img), "A(P1 T0 S1) B(P2 T0 S0)");
        assert_eq!(run_ok("cgpt", &["show", "-i", "4", "-T", img]).trim(), "0");
        assert_eq!(run_ok("cgpt", &["show", "-i", "4", "-S", img]).trim(), "0");
        let next = json(&abguard(&["next", "--disk", img, "--dry-run", "--json"]));
        assert_eq!(next["partition"], 3, "the next boot stays on A");
        // why, in the history and in `abguard status`
        let hist = std::fs::read_to_string(root.join("var/lib/abguard/attempts.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(hist.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "verify-failed");
        assert_eq!(last["verdict"], "unstaged");
        assert_eq!(last["verify"]["result"], "corrupted");
        assert_eq!(last["verify"]["block"], block);
        assert_eq!(last["verify"]["label"], "USR-B");
        assert!(last["reasons"][0]
            .as_str()
            .unwrap()
            .contains(&format!("data block {block} ")));
        assert!(last["actions"][0]
            .as_str()
            .unwrap()
            .contains("un-staged USR-B"));
        let st = abguard(&["status", "--disk", img, "--sysroot", root.to_str().unwrap()]);
        let st = stdout(&st);
        assert!(st.contains("verify-failed"), "{st}");
        assert!(st.contains(&format!("data block {block} ")), "{st}");
        assert!(st.contains("un-staged USR-B"), "{st}");
        // run again: nothing is staged any more, so nothing to verify or write
        let (code, j, _) = verify(&base);
        assert_eq!(
            (code, j["result"].as_str()),
            (Some(0), Some("nothing-staged"))
        );
        assert_eq!(gpt(&im.img), "A(P1 T0 S1) B(P2 T0 S0)");
    }

    #[test]
    fn on_a_block_device_the_partition_node_is_read() {
        if !root("loop devices") {
            return;
        }
        let s = sample();
        let t = tempfile::tempdir().unwrap();
        let img = copy(t.path(), "disk.img");
        flip(
            &img,
            s.var("USR_B_START").parse::<u64>().unwrap() + 7 * 4096,
        );
        let dev = run_ok("losetup", &["-f", "--show", img.to_str().unwrap()])
            .trim()
            .to_string();
        struct Detach(String);
        impl Drop for Detach {
            fn drop(&mut self) {
                let _ = std::process::Command::new("partx")
                    .args(["-d", &self.0])
                    .status();
                let _ = std::process::Command::new("losetup")
                    .args(["-d", &self.0])
                    .status();
            }
        }
        let _detach = Detach(dev.clone());
        run_ok("partx", &["-a", &dev]);
        let (code, j, err) = verify(&[
            "--disk",
            &dev,
            "--partition",
            "3",
            "--root-hash",
            &s.var("USR_A_ROOTHASH"),
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(
            j["device"],
            format!("{dev}p3"),
            "read through the partition node"
        );
        let (code, j, _) = verify(&[
            "--disk",
            &dev,
            "--partition",
            "4",
            "--root-hash",
            &s.var("USR_B_ROOTHASH"),
        ]);
        assert_eq!((code, j["block"].as_u64()), (Some(4), Some(7)));
        assert_eq!(j["device"], format!("{dev}p4"));
        // read-usr on a block device: its size from the device, O_DIRECT too
        for direct in [false, true] {
            let p3 = format!("{dev}p3");
            let mut args = vec!["read-usr", "--device", &p3, "--json"];
            if direct {
                args.push("--direct");
            }
            let j = json(&abguard(&args));
            assert_eq!(j["result"], "ok", "{j}");
            assert_eq!(j["bytes_read"].to_string(), s.var("USR_A_SIZE"), "{j}");
        }
    }

    #[test]
    fn a_failing_slot_that_is_the_only_bootable_one_is_not_spent() {
        // B staged, A never good: un-staging B would leave nothing bootable
        let im = Image::new(&[
            "--version-a",
            "1.0.0",
            "--version-b",
            "2.0.0",
            "--state",
            "staged-b",
        ]);
        let img = im.img.to_str().unwrap();
        cgpt_add(&im.img, 3, 1, 0, false);
        let t = tempfile::tempdir().unwrap();
        let (code, j, _) = verify(&[
            "--disk",
            img,
            "--sysroot",
            t.path().to_str().unwrap(),
            "--root-hash",
            &im.s("USR_A_ROOTHASH"), // B checked against A's hash: fails
            "--unstage-on-failure",
        ]);
        assert_eq!((code, j["result"].as_str()), (Some(4), Some("wrong-hash")));
        assert!(
            j["actions"][0].as_str().unwrap().contains("not un-staged"),
            "{j}"
        );
        assert_eq!(gpt(&im.img), "A(P1 T0 S0) B(P2 T1 S0)");
    }
}
