#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sundial::keys::fuzz_server(data);
});
