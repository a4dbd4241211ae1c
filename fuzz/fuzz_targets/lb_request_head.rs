//! Any bytes as a request head: when netd-lb accepts one, the head it
//! sends a member is accepted again, to its full length and the same framing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd_lb::fuzz_request_head(data);
});
