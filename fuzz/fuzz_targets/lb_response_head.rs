//! Any bytes as a member's response head (to GET, HEAD or an HTTP/1.0 GET):
//! when accepted, the head sent to the client parses to the same status and
//! framing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd_lb::fuzz_response_head(data);
});
