use std::io::Cursor;
fn main() {
    let d = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let s = abguard_fuzz::decode(&d);
    println!("verb {:?} target {} len {}", s.verb, s.target, s.image.len());
    let img = &s.image;
    for lba in [1usize, img.len() / 512 - 1, 127] {
        let h = &img[lba * 512..lba * 512 + 92];
        let q = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
        let l = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap());
        println!("LBA {lba}: sig {:?} my {} alt {} first {} last {} entries@{} n {} size {}", String::from_utf8_lossy(&h[..8]), q(24), q(32), q(40), q(48), q(72), l(80), l(84));
    }
    let t = abguard::gpt::Table::read(&mut Cursor::new(img), 512).unwrap();
    println!("read: {:?} {:?} disk_sectors {}", t.used, t.problems, t.disk_sectors);
    let mut disk = Cursor::new(img.clone());
    t.write(&mut disk).unwrap();
    println!("after write len {}", disk.get_ref().len());
}
