//! Any bytes as a `-p` publish spec and its JSON forms: nothing panics, and
//! what parses round-trips through its printed form.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netd::model::fuzz_port_spec(data);
});
