//! What each fuzz target does with one input, shared by the libFuzzer targets in
//! fuzz_targets/ and by tests/fuzz_regressions.rs (which includes this file with
//! `#[path]`), so a saved input is replayed on stable exactly as the fuzzer ran it.
//!
//! Every function must return normally for every input; a panic is a finding. Besides
//! "no panic" the GPT checks assert a round trip: what abguard writes, it reads back.

use abguard::decide::ab;
use abguard::disk::gpt::Table;
use abguard::types::attrs::UsrAttrs;
use abguard::types::Slot;
use std::io::Cursor;

const SS: u64 = 512;

/// `gpt_read`: the raw bytes as a disk image with 512-byte sectors.
pub fn gpt_read(data: &[u8]) {
    if let Some(t) = read(data) {
        let slots = t.slots();
        // unchanged slots: the write must be a pure rewrite (and repair) of the table
        round_trip(data, &t, &slots);
    }
}

fn read(data: &[u8]) -> Option<Table> {
    let t = Table::read(&mut Cursor::new(data), SS).ok()?;
    let slots = t.slots();
    for s in &slots {
        let raw = t.raw_attributes(s.partition);
        assert_eq!(
            raw.map(UsrAttrs::decode),
            Some(s.attrs),
            "slot {}",
            s.partition
        );
    }
    let _ = ab::next_boot(&slots);
    Some(t)
}

/// Apply `slots` to `t`, write it over a copy of `image`, read it back: the slots read
/// must be exactly the ones written, whichever copy the reader then picks. The copy is a
/// fixed-size buffer, like a disk: a write past its end fails instead of growing it.
fn round_trip(image: &[u8], t: &Table, slots: &[Slot]) {
    let mut t = t.clone();
    t.set_slots(slots);
    let mut written = image.to_vec();
    if let Err(e) = t.write(&mut Cursor::new(&mut written[..])) {
        // fuzz/regressions/gpt_image (fixed in c26bbd4): a header kept from the other
        // copy, with another array size than the array written, put that array past the
        // end of the disk; the only crash ABGUARD_FUZZ_SKIP_KNOWN steps around
        if skip_known() {
            return;
        }
        panic!(
            "writing the table back failed: {e:#} (read from the {:?} copy, problems {:?})",
            t.used, t.problems
        );
    }
    let again = Table::read(&mut Cursor::new(&written[..]), SS).unwrap_or_else(|e| {
        panic!(
            "the table abguard wrote is unreadable: {e:#} (read before the write: {:?} copy, problems {:?})",
            t.used, t.problems
        )
    });
    // one write leaves both copies whole: every damaged or disagreeing copy is rebuilt
    // (before the fix, 26 of 694 corpus tables kept a damaged copy)
    assert!(
        again.problems.is_empty(),
        "the table still has problems after a write: {:?} (before: {:?} copy, problems {:?})",
        again.problems,
        t.used,
        t.problems
    );
    assert_eq!(
        again.slots(),
        slots,
        "read back other slots than were written (before: {:?} copy, problems {:?}; after: {:?} copy, problems {:?})",
        t.used,
        t.problems,
        again.used,
        again.problems
    );
    // the other 55 attribute bits of every slot are carried through untouched
    for s in slots {
        let mask = !(0x1ffu64 << 48);
        assert_eq!(
            again.raw_attributes(s.partition).map(|a| a & mask),
            t.raw_attributes(s.partition).map(|a| a & mask),
            "partition {}: non-USR attribute bits changed",
            s.partition
        );
    }
}

/// The real Flatcar tables the structure-aware target starts from (fuzz/make-corpus.sh).
pub const BASES: [&[u8]; 3] = [
    include_bytes!("../seeds/flatcar-fresh.img"),
    include_bytes!("../seeds/flatcar-staged-b.img"),
    include_bytes!("../seeds/flatcar-booted-b.img"),
];

/// Byte source for the structured input; runs out into zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the structured target does to the slots once the table has been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// rewrite the slots as read
    Keep,
    /// set every slot's fields from the input
    Set,
    /// GRUB's gptprio.next: spend a try on the slot it picks
    Next,
    Stage,
    MarkGood,
    /// rollback --force
    Rollback,
    /// spend the slot (gate-fail, emergency)
    Spend,
}

/// A structured GPT input, decoded from raw bytes:
///
/// | byte | meaning |
/// |---|---|
/// | 0 | flags: bit 0 fix the array CRCs, bit 1 fix the header CRCs, bits 2–3 base image, bit 4 resize, bits 5–6 `successful` for [`Verb::Set`] |
/// | 1 | verb (mod 7, in [`Verb`] order) |
/// | 2 | target slot index (mod the number of slots) |
/// | 3, 4 | slot fields for [`Verb::Set`]: low nibble priority, high nibble tries (slot 0, 1, then alternating) |
/// | 5 | new size in sectors (bit 4 of the flags), 0 meaning 3 |
/// | 6… | patches: region (mod 5: primary header, primary array, backup header, backup array, anywhere), offset (u16 LE, mod the region length), length, bytes |
///
/// Patches land in the base image before the resize; then the CRCs are fixed so the
/// patched fields, not the checksums, are what the reader has to cope with.
#[derive(Debug)]
pub struct Spec {
    pub image: Vec<u8>,
    pub verb: Verb,
    pub target: u8,
    pub fields: [u8; 2],
    pub successful: [bool; 2],
}

pub fn decode(data: &[u8]) -> Spec {
    let mut b = Bytes(data);
    let flags = b.u8();
    let verb = [
        Verb::Keep,
        Verb::Set,
        Verb::Next,
        Verb::Stage,
        Verb::MarkGood,
        Verb::Rollback,
        Verb::Spend,
    ][usize::from(b.u8() % 7)];
    let target = b.u8();
    let fields = [b.u8(), b.u8()];
    let size = b.u8();
    let base = BASES[usize::from((flags >> 2) & 3) % BASES.len()];
    let mut image = base.to_vec();
    let len = image.len();
    let regions: [(usize, usize); 5] = [
        (512, 512),                 // primary header sector
        (1024, 32 * 512),           // primary array
        (len - 512, 512),           // backup header sector
        (len - 33 * 512, 32 * 512), // backup array
        (0, len),                   // anywhere
    ];
    while !b.is_empty() {
        let (start, rlen) = regions[usize::from(b.u8() % 5)];
        let off = usize::from(b.u16()) % rlen;
        let n = usize::from(b.u8());
        let bytes = b.take(n);
        let n = bytes.len().min(rlen - off);
        image[start + off..start + off + n].copy_from_slice(&bytes[..n]);
    }
    if flags & 0x10 != 0 {
        image.resize(usize::from(size.max(3)) * SS as usize, 0);
    }
    fix_crcs(&mut image, flags & 1 != 0, flags & 2 != 0);
    Spec {
        image,
        verb,
        target,
        fields,
        successful: [flags & 0x20 != 0, flags & 0x40 != 0],
    }
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Recompute the array CRC and/or the header CRC of every header where readers look:
/// LBA 1, the last sector, and wherever the primary's backup_lba points.
fn fix_crcs(image: &mut [u8], array: bool, header: bool) {
    const CRC: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
    let sectors = image.len() as u64 / SS;
    if sectors < 3 {
        return;
    }
    let mut at = vec![1, sectors - 1];
    let backup_lba = le64(image, SS as usize + 32);
    if backup_lba > 1 && backup_lba < sectors {
        at.push(backup_lba);
    }
    for lba in at {
        let h = (lba * SS) as usize;
        if array {
            let entry_lba = le64(image, h + 72);
            let n = u64::from(le32(image, h + 80)) * u64::from(le32(image, h + 84));
            let start = entry_lba.saturating_mul(SS);
            if n <= 1 << 20 && start.saturating_add(n) <= image.len() as u64 {
                let crc = CRC.checksum(&image[start as usize..(start + n) as usize]);
                image[h + 88..h + 92].copy_from_slice(&crc.to_le_bytes());
            }
        }
        if header {
            let size = (le32(image, h + 12) as usize).clamp(20, SS as usize);
            let mut copy = image[h..h + size].to_vec();
            copy[16..20].fill(0);
            let crc = CRC.checksum(&copy);
            image[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// `gpt_image`: a structured input (see [`Spec`]); the raw checks on the image it
/// decodes to, then one A/B verb on the slots and the round trip of its result.
pub fn gpt_image(data: &[u8]) {
    let spec = decode(data);
    gpt_spec(&spec);
}

pub fn gpt_spec(spec: &Spec) {
    let image = &spec.image;
    let Some(t) = read(image) else { return };
    let before = t.slots();
    round_trip(image, &t, &before);
    let mut slots = before.clone();
    if slots.is_empty() {
        return;
    }
    let target = usize::from(spec.target) % slots.len();
    match spec.verb {
        Verb::Keep => {}
        Verb::Set => {
            for (i, s) in slots.iter_mut().enumerate() {
                let f = spec.fields[i % 2];
                s.attrs = UsrAttrs::new(f & 15, f >> 4, spec.successful[i % 2]);
            }
        }
        Verb::Next => {
            if let Some(i) = ab::next_boot(&slots) {
                slots[i].attrs = ab::spend_try(slots[i].attrs);
            }
        }
        Verb::Stage => ab::stage(&mut slots, target),
        Verb::MarkGood => ab::mark_good(&mut slots, target),
        Verb::Rollback => ab::rollback(&mut slots, target, true).expect("forced rollback"),
        Verb::Spend => {
            if ab::spend_slot(&mut slots, target).is_err() {
                assert_eq!(slots, before, "a refused spend changed the slots");
            }
        }
    }
    for s in &slots {
        assert!(s.attrs.priority <= 15 && s.attrs.tries <= 15, "{s:?}");
    }
    round_trip(image, &t, &slots);
}

/// `ABGUARD_FUZZ_SKIP_KNOWN=1` makes the targets step around crashes that are already
/// saved in fuzz/regressions/ (and so fail `make test` until fixed), letting a long run
/// explore past them. Never set by the regression test.
fn skip_known() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("ABGUARD_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

/// `cmdline`: the kernel command line, from lossy UTF-8.
pub fn cmdline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let c = abguard::probe::cmdline::parse(&text);
    if let Some(Ok((_, abguard::probe::cmdline::UsrRef::PartUuid(u)))) = &c.usr {
        assert_eq!(u.len(), 36, "{u:?}");
    }
    if let Some(Ok(h)) = &c.usrhash {
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{h:?}"
        );
    }
}

/// `osrelease`: os-release text, from lossy UTF-8.
pub fn osrelease(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for key in ["VERSION_ID", "ID"] {
        if let Some(v) = abguard::probe::osrelease::get(&text, key) {
            assert!(!v.is_empty(), "{key} found but empty");
        }
    }
}

/// `dm_ioctl`: a whole DM_TABLE_STATUS reply as the kernel leaves it in the buffer,
/// `struct dm_ioctl` first; data_size, data_start and target_count are taken from it
/// the way `dm::query` does. The targets then serve as both status and table.
pub fn dm_ioctl(data: &[u8]) {
    if data.len() < 24 {
        return;
    }
    let ne32 = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
    let (data_size, data_start, count) = (ne32(12), ne32(16), ne32(20));
    let end = (data_size as usize).min(data.len());
    let Ok(targets) = abguard::probe::dm::parse_targets(&data[..end], data_start as usize, count)
    else {
        return;
    };
    assert!(targets.len() <= count as usize);
    // the expected hash: none, or one taken from the first target's table parameters
    for expected in [
        None,
        targets
            .first()
            .and_then(|t| abguard::decide::verity::verity_root_hash(&t.params)),
    ] {
        let v = abguard::decide::verity::Verity::from_targets(&targets, &targets, expected);
        let _ = v.problem();
    }
}

/// `dm_lines`: `dmsetup status` lines, a line `--`, `dmsetup table` lines, optionally
/// another `--` and the expected root hash (verity.usrhash=).
pub fn dm_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split("\n--\n");
    let lines = |s: Option<&str>| -> Vec<abguard::decide::verity::Target> {
        s.unwrap_or("")
            .lines()
            .filter_map(abguard::decide::verity::parse_line)
            .collect()
    };
    let status = lines(parts.next());
    let table = lines(parts.next());
    let expected = parts.next().map(|s| s.trim().to_string());
    for t in status.iter().chain(&table) {
        let _ = abguard::decide::verity::verity_root_hash(&t.params);
    }
    let v = abguard::decide::verity::Verity::from_targets(&status, &table, expected);
    let problem = v.problem();
    if v.unavailable.is_some() {
        assert!(problem.is_none());
    }
}

/// `mountinfo`: /proc/self/mountinfo text, from lossy UTF-8.
pub fn mountinfo(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mounts = abguard::probe::sysfs::parse_mountinfo(&text);
    assert!(mounts.len() <= text.lines().count());
    for dir in ["/sysusr/usr", "/usr"] {
        let _ = abguard::probe::sysfs::usr_mount(&mounts, dir);
    }
}
