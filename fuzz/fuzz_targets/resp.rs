#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dstash_fuzz::resp::resp(data));
