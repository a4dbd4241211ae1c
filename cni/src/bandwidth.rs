//! The `bandwidth` capability (CONVENTIONS): rates in bits per second and
//! bursts in bits, as the reference `bandwidth` plugin takes them, and
//! shaped the way it shapes them.
//!
//! - What enters the container is what the host end of its veth
//!   transmits: a token bucket (tbf) on that end's root, which the kernel
//!   removes with the veth.
//! - What leaves the container is what the host end receives, and a
//!   receive side has no queue to shape. So an ifb device per container
//!   (`ndi` + the host veth's 12 hex digits, see `netd::model::ifb_of`)
//!   gets everything the host end receives, redirected by a match-all u32
//!   filter on an ingress qdisc there, and a tbf on the ifb's root shapes
//!   it. The kernel does not delete the ifb with the veth: DEL deletes it
//!   beside the veth, a failed ADD deletes it before returning, and GC and
//!   the daemon's reconcile delete any ifb whose endpoint is gone.

use serde_json::Value;

use crate::error::{CniError, code};

/// How long a packet may wait in the bucket's queue (the reference
/// plugin's choice): with the burst, it sizes the queue.
const LATENCY_MS: u64 = 25;

/// The smallest burst that passes a full-size frame.
const MIN_BURST_BYTES: u64 = 1514;

/// The u32 filter's priority and handle on the host veth's ingress qdisc:
/// fixed, so that a retried ADD replaces its own filter instead of adding
/// a second one.
const FILTER_PRIO: &str = "1";
const FILTER_HANDLE: &str = "800::800";

/// One direction's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// bits per second.
    pub rate: u64,
    /// bits.
    pub burst: u64,
}

/// The limits the runtime asked for: at least one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// On what enters the container.
    pub ingress: Option<Limit>,
    /// On what leaves it.
    pub egress: Option<Limit>,
}

impl Bandwidth {
    /// `runtimeConfig.bandwidth`, if it asks for a limit.
    pub fn parse(v: &Value) -> Result<Option<Bandwidth>, CniError> {
        let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
        let obj = v.as_object().ok_or_else(|| {
            bad(format!(
                "runtimeConfig.bandwidth must be an object, got {v}"
            ))
        })?;
        let [
            mut ingress_rate,
            mut ingress_burst,
            mut egress_rate,
            mut egress_burst,
        ] = [0u64; 4];
        for (k, val) in obj {
            let slot = match k.as_str() {
                "ingressRate" => &mut ingress_rate,
                "ingressBurst" => &mut ingress_burst,
                "egressRate" => &mut egress_rate,
                "egressBurst" => &mut egress_burst,
                _ => {
                    return Err(bad(format!(
                        "runtimeConfig.bandwidth: unknown key {k:?} (ingressRate, ingressBurst, egressRate, egressBurst)"
                    )));
                }
            };
            *slot = val.as_u64().ok_or_else(|| {
                bad(format!(
                    "runtimeConfig.bandwidth.{k}: {val} is not a whole number of bits{}",
                    if k.ends_with("Rate") {
                        " per second"
                    } else {
                        ""
                    }
                ))
            })?;
        }
        let ingress = Limit::parse("ingress", ingress_rate, ingress_burst)?;
        let egress = Limit::parse("egress", egress_rate, egress_burst)?;
        Ok((ingress.is_some() || egress.is_some()).then_some(Bandwidth { ingress, egress }))
    }
}

impl Limit {
    /// `<dir>Rate` and `<dir>Burst`: both or neither, the burst a frame
    /// at least.
    fn parse(dir: &str, rate: u64, burst: u64) -> Result<Option<Limit>, CniError> {
        let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
        match (rate, burst) {
            (0, 0) => Ok(None),
            (0, _) | (_, 0) => Err(bad(format!(
                "runtimeConfig.bandwidth: {dir}Rate and {dir}Burst go together, got {rate} and {burst}"
            ))),
            (_, b) if b / 8 < MIN_BURST_BYTES => Err(bad(format!(
                "runtimeConfig.bandwidth: {dir}Burst {b} bits is less than a frame ({} bits)",
                MIN_BURST_BYTES * 8
            ))),
            (rate, burst) => Ok(Some(Limit { rate, burst })),
        }
    }

    /// The `tc` arguments that put this limit on `dev`'s transmit side.
    pub fn tc_args(&self, dev: &str) -> Vec<String> {
        let burst = self.burst / 8;
        let limit = self.rate / 8 * LATENCY_MS / 1000 + burst;
        strings(&["qdisc", "replace", "dev", dev, "root", "tbf", "rate"])
            .into_iter()
            .chain([
                format!("{}bit", self.rate),
                "burst".into(),
                format!("{burst}b"),
                "limit".into(),
                format!("{limit}b"),
            ])
            .collect()
    }
}

/// The commands, in order, that send everything `host_veth` receives
/// through `ifb`'s transmit side (where [`Limit::tc_args`] shapes it),
/// once the ifb exists and is up. Each replaces what a retried ADD made.
pub fn redirect_args(host_veth: &str, ifb: &str) -> [Vec<String>; 2] {
    [
        strings(&["qdisc", "replace", "dev", host_veth, "ingress"]),
        strings(&[
            "filter",
            "replace",
            "dev",
            host_veth,
            "parent",
            "ffff:",
            "protocol",
            "all",
            "prio",
            FILTER_PRIO,
            "handle",
            FILTER_HANDLE,
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            ifb,
        ]),
    ]
}

/// The `ip` arguments that make the ifb `ifb`, with the MTU of the veth
/// whose traffic it takes (a smaller one would drop its large frames).
pub fn ifb_add_args(ifb: &str, mtu: Option<u32>) -> Vec<String> {
    let mut a = strings(&["link", "add", "name", ifb]);
    if let Some(m) = mtu {
        a.extend(["mtu".to_string(), m.to_string()]);
    }
    a.extend(strings(&["type", "ifb"]));
    a
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Bandwidth {
        Bandwidth::parse(&v).unwrap().unwrap()
    }

    #[test]
    fn ingress_and_egress_limits_each_alone_or_together() {
        assert_eq!(Bandwidth::parse(&json!({})).unwrap(), None);
        let eight = Limit {
            rate: 8_000_000,
            burst: 256_000,
        };
        let b = parse(json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000 }));
        assert_eq!((b.ingress, b.egress), (Some(eight), None));
        let b = parse(json!({ "egressRate": 8_000_000, "egressBurst": 256_000 }));
        assert_eq!((b.ingress, b.egress), (None, Some(eight)));
        let b = parse(json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000,
                              "egressRate": 4_000_000, "egressBurst": 128_000 }));
        assert_eq!(b.ingress, Some(eight));
        assert_eq!(
            b.egress,
            Some(Limit {
                rate: 4_000_000,
                burst: 128_000
            })
        );
        assert_eq!(
            eight.tc_args("nd-x").join(" "),
            "qdisc replace dev nd-x root tbf rate 8000000bit burst 32000b limit 57000b"
        );
    }

    #[test]
    fn a_half_given_or_too_small_limit_is_refused_naming_its_keys() {
        for (bad, want) in [
            (
                json!({ "ingressRate": 1000 }),
                "ingressRate and ingressBurst",
            ),
            (
                json!({ "ingressBurst": 1000 }),
                "ingressRate and ingressBurst",
            ),
            (json!({ "egressRate": 1000 }), "egressRate and egressBurst"),
            (
                json!({ "egressBurst": 256_000 }),
                "egressRate and egressBurst",
            ),
            (
                json!({ "ingressRate": 1000, "ingressBurst": 800 }),
                "ingressBurst 800 bits is less than a frame (12112 bits)",
            ),
            (
                json!({ "egressRate": 1000, "egressBurst": 12_000 }),
                "egressBurst 12000 bits is less than a frame (12112 bits)",
            ),
            // A good ingress limit does not let a bad egress one through.
            (
                json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000, "egressRate": 8_000_000 }),
                "egressRate and egressBurst",
            ),
            (
                json!({ "egressRate": "fast" }),
                "bandwidth.egressRate: \"fast\" is not a whole number of bits per second",
            ),
            (
                json!({ "ingressBurst": -1 }),
                "bandwidth.ingressBurst: -1 is not a whole number of bits",
            ),
            (json!({ "shape": 1 }), "unknown key \"shape\""),
            (json!([1]), "must be an object"),
        ] {
            let e = Bandwidth::parse(&bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad}");
            assert!(e.msg.contains(want), "{bad}: {}", e.msg);
        }
        // The smallest burst that passes a frame is taken.
        assert!(Bandwidth::parse(&json!({ "egressRate": 1000, "egressBurst": 12_112 })).is_ok());
    }

    #[test]
    fn egress_goes_through_the_ifb() {
        let [qdisc, filter] = redirect_args("nd-0123456789ab", "ndi0123456789ab");
        assert_eq!(qdisc.join(" "), "qdisc replace dev nd-0123456789ab ingress");
        assert_eq!(
            filter.join(" "),
            "filter replace dev nd-0123456789ab parent ffff: protocol all prio 1 handle 800::800 \
             u32 match u32 0 0 action mirred egress redirect dev ndi0123456789ab"
        );
        assert_eq!(
            ifb_add_args("ndi0123456789ab", Some(9000)).join(" "),
            "link add name ndi0123456789ab mtu 9000 type ifb"
        );
        assert_eq!(
            ifb_add_args("ndi0123456789ab", None).join(" "),
            "link add name ndi0123456789ab type ifb"
        );
        let egress = Limit {
            rate: 4_000_000,
            burst: 128_000,
        };
        assert_eq!(
            egress.tc_args("ndi0123456789ab").join(" "),
            "qdisc replace dev ndi0123456789ab root tbf rate 4000000bit burst 16000b limit 28500b"
        );
    }
}
