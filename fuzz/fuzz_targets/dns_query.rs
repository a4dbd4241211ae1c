//! Any bytes through the query path, over UDP and TCP rules: a reply is
//! always a well-formed response, and nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd_dns::fuzz_one(data);
});
