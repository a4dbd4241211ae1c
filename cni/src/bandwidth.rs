//! The `bandwidth` capability (CONVENTIONS): rates in bits per second and
//! bursts in bits, as the reference `bandwidth` plugin takes them. netd
//! shapes what enters the container with a token bucket (tbf) on the host
//! end of its veth, which the kernel removes with the veth. What leaves the
//! container would need an ifb device per container to shape (the host end
//! only receives it): refused until netd makes one.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, code};

/// How long a packet may wait in the bucket's queue (the reference
/// plugin's choice): with the burst, it sizes the queue.
const LATENCY_MS: u64 = 25;

/// The smallest burst that passes a full-size frame.
const MIN_BURST_BYTES: u64 = 1514;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    ingress_rate: u64,
    #[serde(default)]
    ingress_burst: u64,
    #[serde(default)]
    egress_rate: u64,
    #[serde(default)]
    egress_burst: u64,
}

/// A limit on what enters the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// bits per second.
    pub rate: u64,
    /// bits.
    pub burst: u64,
}

impl Bandwidth {
    /// `runtimeConfig.bandwidth`, if it asks for a limit.
    pub fn parse(v: &Value) -> Result<Option<Bandwidth>, CniError> {
        let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
        let raw: Raw = serde_json::from_value(v.clone())
            .map_err(|e| bad(format!("runtimeConfig.bandwidth: {e}")))?;
        if raw.egress_rate > 0 || raw.egress_burst > 0 {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!(
                    "unsupported field runtimeConfig.bandwidth.egressRate/egressBurst: {}/{}: netd shapes only what enters the container (egress would need an ifb device per container)",
                    raw.egress_rate, raw.egress_burst
                ),
            ));
        }
        match (raw.ingress_rate, raw.ingress_burst) {
            (0, 0) => Ok(None),
            (0, _) | (_, 0) => Err(bad(format!(
                "runtimeConfig.bandwidth: ingressRate and ingressBurst go together, got {} and {}",
                raw.ingress_rate, raw.ingress_burst
            ))),
            (_, b) if b / 8 < MIN_BURST_BYTES => Err(bad(format!(
                "runtimeConfig.bandwidth: ingressBurst {b} bits is less than a frame ({} bits)",
                MIN_BURST_BYTES * 8
            ))),
            (rate, burst) => Ok(Some(Bandwidth { rate, burst })),
        }
    }

    /// The `tc` arguments that put this limit on `dev`'s transmit side.
    pub fn tc_args(&self, dev: &str) -> Vec<String> {
        let burst = self.burst / 8;
        let limit = self.rate / 8 * LATENCY_MS / 1000 + burst;
        ["qdisc", "replace", "dev", dev, "root", "tbf", "rate"]
            .iter()
            .map(|s| s.to_string())
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ingress_limits_only() {
        assert_eq!(Bandwidth::parse(&json!({})).unwrap(), None);
        let b = Bandwidth::parse(&json!({ "ingressRate": 8_000_000, "ingressBurst": 256_000 }))
            .unwrap()
            .unwrap();
        assert_eq!(
            b.tc_args("nd-x").join(" "),
            "qdisc replace dev nd-x root tbf rate 8000000bit burst 32000b limit 57000b"
        );
        for (bad, want) in [
            (
                json!({ "egressRate": 1000, "egressBurst": 1000 }),
                code::UNSUPPORTED_FIELD,
            ),
            (json!({ "ingressRate": 1000 }), code::INVALID_CONFIG),
            (
                json!({ "ingressRate": 1000, "ingressBurst": 800 }),
                code::INVALID_CONFIG,
            ),
            (json!({ "ingressRate": "fast" }), code::INVALID_CONFIG),
            (json!({ "shape": 1 }), code::INVALID_CONFIG),
        ] {
            assert_eq!(Bandwidth::parse(&bad).unwrap_err().code, want, "{bad}");
        }
    }
}
