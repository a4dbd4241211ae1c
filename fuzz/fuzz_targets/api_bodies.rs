//! A route selector byte, then a request body (or `filters` parameter):
//! parsed and validated as both API families do. Nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd::daemon::fuzz_body(data);
});
