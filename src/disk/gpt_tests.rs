//! Unit tests of `gpt` (beside it, to keep that file short).

use super::*;
use crate::disk::layout::check_header;

#[test]
fn guid_round_trip() {
    let s = "7130c94a-213a-4e5a-8e26-6cce9662f132";
    assert_eq!(guid_string(&guid_bytes(s)), s);
    assert_eq!(guid_string(&guid_bytes(&s.to_uppercase())), s);
    // on-disk order of the USR type, as sgdisk writes it
    assert_eq!(&USR_TYPE[..4], &[0xf4, 0xf5, 0xfb, 0x5d]);
}

/// Each placement rule of GRUB's and cgpt's header checks, on a 133,120-sector disk
/// laid out as sgdisk does (arrays at 2 and 133,087, usable 34..=133,086).
#[test]
fn copies_grub_or_cgpt_reject_are_rejected() {
    const N: u64 = 133_120;
    let header = |at: u64, other: u64, entries: u64, first: u64, last: u64| GPTHeader {
        signature: *b"EFI PART",
        revision: [0, 0, 1, 0],
        header_size: HEADER_SIZE,
        crc32_checksum: 0,
        reserved: [0; 4],
        primary_lba: at,
        backup_lba: other,
        first_usable_lba: first,
        last_usable_lba: last,
        disk_guid: [7; 16],
        partition_entry_lba: entries,
        number_of_partition_entries: 128,
        size_of_partition_entry: ENTRY_SIZE,
        partition_entry_array_crc32: 0,
    };
    let primary = |entries, first, last| header(1, N - 1, entries, first, last);
    let backup = |entries, first, last| header(N - 1, 1, entries, first, last);
    let check = |h: GPTHeader| check_header(&h, h.primary_lba, N, 512);
    // (header, the words of the rejection, or None when it is valid)
    let cases = [
        (primary(2, 34, 133_086), None),
        (backup(133_087, 34, 133_086), None),
        // a primary array elsewhere before the usable range is fine for both
        (primary(10, 42, 133_086), None),
        // GRUB: the primary array must end before the usable range starts
        (primary(3, 34, 133_086), Some("overlaps the usable range")),
        // GRUB: the backup array must start after the usable range, end before its header
        (
            backup(133_000, 34, 133_086),
            Some("overlaps the usable range"),
        ),
        (backup(133_050, 34, 133_040), None),
        (backup(133_088, 34, 133_040), Some("or its header")),
        // GRUB: each header's other copy is on the other side of the usable range
        (
            header(1, 133_000, 2, 34, 133_086),
            Some("lies inside the usable range"),
        ),
        (
            header(N - 1, 40, 133_087, 34, 133_086),
            Some("lies inside the usable range"),
        ),
        // cgpt: room for both 32-sector arrays at their usual places
        (primary(2, 33, 133_086), Some("leaves no room")),
        (primary(2, 34, 133_087), Some("leaves no room")),
        (backup(133_087, 20, 133_086), Some("leaves no room")),
    ];
    for (h, want) in cases {
        let what = format!(
            "{} at {} entries at {}",
            h.first_usable_lba, h.primary_lba, h.partition_entry_lba
        );
        match (check(h), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{what}: {e}"),
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn tiny_inputs_are_errors_not_panics() {
    for len in [0usize, 1, 511, 512, 1024, 1535, 4096, 40 * 1024] {
        let mut c = io::Cursor::new(vec![0u8; len]);
        assert!(Table::read(&mut c, 512).is_err(), "len {len}");
    }
}
