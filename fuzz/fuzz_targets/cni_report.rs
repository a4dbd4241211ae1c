//! Any bytes as a datagram on the daemon's CNI report socket: nothing
//! panics, and what parses round-trips through its encoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd::daemon::cni_report::fuzz(data);
});
