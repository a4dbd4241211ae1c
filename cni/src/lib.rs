//! The CNI protocol for netd: environment, configuration, results and
//! errors as SPEC 1.1.0 (and the reference `skel` package) writes them. Pure
//! types and conversions, unit-tested without root. The binary (`main.rs`
//! and `commands/`) does the I/O and calls netd's operations
//! (`netd::ops::{ensure, attachment, check}`), which hold every decision
//! about networks, sandboxes and endpoints.

use std::collections::BTreeMap;

mod bandwidth;
mod check;
mod conf;
mod conventions;
mod env;
mod error;
mod keys;
mod lease;
mod ranges;
mod request;
mod result;
mod version;

pub use bandwidth::{Bandwidth, Limit, ifb_add_args, redirect_args};
pub use check::{Expected, expected};
pub use conf::{
    MAX_STDIN, NetConf, PortMap, RuntimeConfig, decode, read_config, valid_attachments,
};
pub use conventions::{Aliases, Conventions, Dns, check_cni_args, static_ips};
pub use env::{Command, Env, cni_arg, sandbox_name, valid_cni_name, valid_plugin_name};
pub use error::{CniError, code};
pub use lease::{Lease, lease};
pub use request::{endpoint_request, network_request, network_spec};
pub use result::{Attachment, NAMESERVER, result};
pub use version::{
    IMPLICIT_VERSION, SUPPORTED, at_least, command_allowed, legacy_result, prev_result_allowed,
};

/// The fuzz target's entry (`cni_config`): `bytes` are the environment as
/// `KEY=VALUE` lines, a NUL, then stdin. Runs the real parsers in the
/// plugin's order and every conversion into netd's requests. Must never
/// panic, whatever the input.
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) {
    let (env, stdin) = match bytes.iter().position(|b| *b == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&[][..], bytes),
    };
    let env = String::from_utf8_lossy(env);
    let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let Ok(stdin) = read_config(stdin) else {
        return;
    };
    let _ = decode(&stdin);
    let env = Env::from(|k| vars.get(k).map(|v| v.to_string()));
    let Ok(conf) = NetConf::parse(&stdin) else {
        return;
    };
    if let Ok(raw) = decode(&stdin) {
        let _ = valid_attachments(&raw);
    }
    let _ = conf.dns();
    let _ = network_request(&conf, None).validate();
    let _ = network_spec(&conf, None);
    if let (Ok(address), Ok(address6)) = ("10.9.8.7/24".parse(), "fd00:9::7/64".parse()) {
        let l = Lease {
            address: Some(address),
            gateway: "10.9.8.1".parse().ok(),
            address6: Some(address6),
            gateway6: "fd00:9::1".parse().ok(),
        };
        let _ = network_request(&conf, Some(&l)).validate();
        let _ = network_spec(
            &conf,
            Some(&Lease {
                address6: None,
                ..l
            }),
        );
        let _ = network_spec(
            &conf,
            Some(&Lease {
                address: None,
                gateway: None,
                ..l
            }),
        );
    }
    if let Ok(env) = env {
        let _ = command_allowed(env.command, &conf.cni_version);
        let _ = prev_result_allowed(&conf.cni_version, conf.prev_result.is_some());
        let _ = endpoint_request(&conf, &env);
        if let Some(prev) = &conf.prev_result {
            let _ = expected(prev, &env.ifname, env.netns.as_deref().unwrap_or(""));
        }
    }
}

#[cfg(test)]
mod tests {
    /// The fuzz target's seeds go through without a panic (the fuzzer
    /// itself needs nightly; this keeps its corpus honest on stable).
    #[test]
    fn fuzz_seeds_do_not_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/cni_config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("the cni_config seeds") {
            super::fuzz_one(&std::fs::read(e.expect("a seed").path()).expect("readable"));
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }
}
