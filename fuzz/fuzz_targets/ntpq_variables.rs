#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sundial::ntpq::fuzz_variables(data);
});
