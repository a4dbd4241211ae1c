//! Any bytes as a chunked body, in three pieces: the streaming decoder agrees
//! with a line-by-line reference, passes on exactly what it took, and decodes
//! as many bytes as the chunk sizes add up to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd_lb::fuzz_chunked(data);
});
