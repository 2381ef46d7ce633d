#![no_main]
// See abguard_fuzz::gpt_image (fuzz/src/lib.rs) for what one input is and what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| abguard_fuzz::gpt_image(data));
