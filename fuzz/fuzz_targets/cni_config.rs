//! The CNI_* environment (KEY=VALUE lines), a NUL, then the configuration
//! on stdin: through netd-cni's parsers and into netd's requests. Nothing
//! panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd_cni::fuzz_one(data);
});
