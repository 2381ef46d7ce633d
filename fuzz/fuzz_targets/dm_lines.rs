#![no_main]
// See abguard_fuzz::dm_lines (fuzz/src/lib.rs) for what one input is and what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| abguard_fuzz::dm_lines(data));
