#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sundial::config::fuzz_parse(data);
});
