//! Unit tests of `verity` (beside it, to keep that file short).

use super::*;

fn sb_bytes(data_blocks: u64) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..8].copy_from_slice(SIGNATURE);
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[12..16].copy_from_slice(&1u32.to_le_bytes());
    b[32..38].copy_from_slice(b"sha256");
    b[64..68].copy_from_slice(&4096u32.to_le_bytes());
    b[68..72].copy_from_slice(&4096u32.to_le_bytes());
    b[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    b
}

#[test]
fn flatcar_geometry() {
    // Flatcar's 1 GiB USR filesystem: 260094 blocks, so its hash tree starts at byte
    // 1065345024, the offset Flatcar's initrd passes to veritysetup --hash-offset
    assert_eq!(fs_blocks(1 << 30), 260_094);
    assert_eq!(fs_blocks(1 << 30) * BLOCK, FLATCAR_HASH_OFFSET);
    // mkimage.sh's 16 MiB slot (FS_BLOCKS=4062) and build-usr.sh's 128 MiB one
    assert_eq!(fs_blocks(16 << 20), 4062);
    let n = fs_blocks(128 << 20);
    assert!(n + tree_blocks(n) <= 32768 && n + 1 + tree_blocks(n + 1) > 32768);
    // a 2 GiB partition with Flatcar's 1 GiB filesystem: found by the halving rule
    let c = candidates(2 << 30);
    assert!(
        c.contains(&(FLATCAR_HASH_OFFSET, OffsetSource::FsBlocksRule)),
        "{c:?}"
    );
    assert_eq!(tree_blocks(1), 1);
    assert_eq!(fs_blocks(0), 0);
}

#[test]
fn superblock_parsing() {
    let sb = Superblock::parse(&sb_bytes(4062)).unwrap();
    assert_eq!(
        (sb.algorithm.as_str(), sb.data_blocks, sb.data_bytes()),
        ("sha256", 4062, 4062 * 4096)
    );
    let mut bad = sb_bytes(4062);
    bad[8] = 2; // version
    assert!(Superblock::parse(&bad).is_none());
    let mut bad = sb_bytes(4062);
    bad[64..68].copy_from_slice(&1000u32.to_le_bytes());
    assert!(Superblock::parse(&bad).is_none());
    assert!(Superblock::parse(&sb_bytes(0)).is_none());
    assert!(Superblock::parse(&[0u8; 512]).is_none());
    assert!(Superblock::parse(b"verity\0\0").is_none());
}

#[test]
fn finds_the_superblock_by_rule_and_by_scan() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("slot");
    // Flatcar geometry for 4 MiB
    let size = 4u64 << 20;
    let n = fs_blocks(size);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&sb_bytes(n), n * BLOCK).unwrap();
    let f = File::open(&p).unwrap();
    let found = find_superblock(&f).unwrap().unwrap();
    assert_eq!(
        (found.offset, found.source),
        (n * BLOCK, OffsetSource::FsBlocksRule)
    );
    // an odd layout: only the scan finds it; a decoy that does not end the data
    // area (and a stale one further back) are passed over
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&sb_bytes(10), 100 * BLOCK).unwrap(); // decoy: 10 blocks ≠ 100
    f.write_all_at(&sb_bytes(300), 300 * BLOCK).unwrap();
    f.write_all_at(&sb_bytes(500), 500 * BLOCK).unwrap(); // stale
    let f = File::open(&p).unwrap();
    let found = find_superblock(&f).unwrap().unwrap();
    assert_eq!(
        (found.offset, found.source),
        (300 * BLOCK, OffsetSource::Scan)
    );
    // no tree at all
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.set_len(size).unwrap();
    assert_eq!(find_superblock(&File::open(&p).unwrap()).unwrap(), None);
}

#[test]
fn kernel_hash_offset_follows_the_image_header() {
    let t = tempfile::tempdir().unwrap();
    let hash = "cdd4434a622011df26a068fc404e324f1e65ee4d00158c4a2b999b6339540589";
    // (what the header says, where the hash sits): an x86 bzImage ("MZ", "HdrS"
    // at 0x202) and an arm64 EFI-stub Image ("MZ", "ARM\x64" at 0x38)
    for (arm64, off) in [(false, 0x40usize), (true, 512)] {
        let k = t.path().join(format!("vmlinuz-{off}"));
        let mut img = vec![0u8; 4096];
        img[..2].copy_from_slice(b"MZ");
        if arm64 {
            img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        } else {
            img[0x202..0x206].copy_from_slice(b"HdrS");
        }
        img[off..off + 64].copy_from_slice(hash.as_bytes());
        std::fs::write(&k, &img).unwrap();
        assert_eq!(kernel_root_hash(&k).unwrap(), hash, "arm64={arm64}");
        // the hash at the other architecture's offset is not taken
        let other = if arm64 { 0x40 } else { 512 };
        let mut wrong = vec![0u8; 4096];
        wrong[..0x40].copy_from_slice(&img[..0x40]);
        wrong[other..other + 64].copy_from_slice(hash.as_bytes());
        std::fs::write(&k, &wrong).unwrap();
        let e = kernel_root_hash(&k).unwrap_err().to_string();
        assert!(e.contains(&format!("at byte {off}")), "{e}");
    }
    assert_eq!(kernel_hash_offset(b"short"), KERNEL_HASH_OFFSET);
}

#[test]
fn kernel_hash_as_grub_reads_it() {
    let t = tempfile::tempdir().unwrap();
    let k = t.path().join("vmlinuz-a");
    let hash = "cdd4434a622011df26a068fc404e324f1e65ee4d00158c4a2b999b6339540589";
    let mut img = vec![0u8; 4096];
    img[KERNEL_HASH_OFFSET as usize..KERNEL_HASH_OFFSET as usize + 64]
        .copy_from_slice(hash.as_bytes());
    std::fs::write(&k, &img).unwrap();
    assert_eq!(kernel_root_hash(&k).unwrap(), hash);
    // GRUB accepts lower-case hex only
    let upper = hash.to_uppercase();
    img[KERNEL_HASH_OFFSET as usize..KERNEL_HASH_OFFSET as usize + 64]
        .copy_from_slice(upper.as_bytes());
    std::fs::write(&k, &img).unwrap();
    assert!(kernel_root_hash(&k)
        .unwrap_err()
        .to_string()
        .contains("no verity root hash"));
    std::fs::write(&k, b"short").unwrap();
    assert!(kernel_root_hash(&k).is_err());
    // slot → kernel, as grub.cfg chooses it
    let root = t.path();
    assert_eq!(
        kernel_for(root, USR_A_PARTUUID),
        root.join("boot/flatcar/vmlinuz-a")
    );
    assert_eq!(
        kernel_for(root, "e03dd35c-7c2d-4a47-b3fe-27f15780a57c"),
        root.join("boot/flatcar/vmlinuz-b")
    );
    std::fs::create_dir_all(root.join("boot/coreos")).unwrap();
    std::fs::write(root.join("boot/coreos/vmlinuz-b"), b"").unwrap();
    assert_eq!(
        kernel_for(root, "e03dd35c-7c2d-4a47-b3fe-27f15780a57c"),
        root.join("boot/coreos/vmlinuz-b")
    );
}

#[test]
fn hex() {
    assert_eq!(parse_hex("00ffA0").unwrap(), [0, 255, 160]);
    assert!(parse_hex("abc").is_err());
    assert!(parse_hex("zz").is_err());
    assert!(parse_hex("").is_err());
}
