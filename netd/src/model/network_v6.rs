//! The IPv6 side of a network create, and the auxiliary addresses of
//! both families: parsed from the request, checked against their subnets.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

use super::options::{OPT_GATEWAY_MODE_V6, OPT_MASQUERADE, bool_option, nat_mode};
use super::requests::MAX_LABEL_KEY;
use super::requests::NetworkCreate;
use super::subnets::parse_net6;
use super::{Invalid, cut, invalid};

/// The IPv6 side of a validated create: the subnet may still have to be
/// picked from the ULA pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidIpv6 {
    pub subnet: Option<Ipv6Net>,
    pub gateway: Option<Ipv6Addr>,
    pub ip_range: Option<Ipv6Net>,
    /// NAT66; false in routed mode.
    pub masquerade: bool,
    pub aux_addresses: BTreeMap<String, Ipv6Addr>,
}

pub(super) fn is_v6(s: &str) -> bool {
    s.contains(':')
}

/// At most this many auxiliary addresses: they are kept with the network.
pub const MAX_AUX_ADDRESSES: usize = 64;

/// Auxiliary addresses by family, each checked against its subnet and
/// gateway once those are known.
pub(super) type AuxByFamily = (BTreeMap<String, Ipv4Addr>, BTreeMap<String, Ipv6Addr>);

pub(super) fn parse_aux(aux: &BTreeMap<String, String>) -> Result<AuxByFamily, Invalid> {
    if aux.len() > MAX_AUX_ADDRESSES {
        return invalid(format!(
            "too many auxiliary addresses ({}): at most {MAX_AUX_ADDRESSES}",
            aux.len()
        ));
    }
    let (mut v4, mut v6) = (BTreeMap::new(), BTreeMap::new());
    for (name, ip) in aux {
        if name.is_empty() || name.len() > MAX_LABEL_KEY {
            return invalid(format!(
                "invalid auxiliary address name {:?}: 1-{MAX_LABEL_KEY} bytes",
                cut(name)
            ));
        }
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => {
                v4.insert(name.clone(), a);
            }
            Ok(std::net::IpAddr::V6(a)) => {
                v6.insert(name.clone(), a);
            }
            Err(_) => {
                return invalid(format!(
                    "invalid auxiliary address {}={:?}: expected an IP address",
                    cut(name),
                    cut(ip)
                ));
            }
        }
    }
    Ok((v4, v6))
}

/// Refuse an auxiliary address the subnet cannot reserve: outside it, or
/// the gateway (which the bridge itself holds).
pub(super) fn check_aux<A: std::fmt::Display + PartialEq + Copy>(
    aux: &BTreeMap<String, A>,
    contains: impl Fn(&A) -> bool,
    subnet: &dyn std::fmt::Display,
    gateway: A,
) -> Result<(), Invalid> {
    for (name, ip) in aux {
        if !contains(ip) {
            return invalid(format!(
                "auxiliary address {name}={ip} is outside subnet {subnet}"
            ));
        }
        if *ip == gateway {
            return invalid(format!(
                "auxiliary address {name}={ip} is the gateway of subnet {subnet}"
            ));
        }
    }
    Ok(())
}

impl NetworkCreate {
    pub(super) fn validate_ipv6(&self) -> Result<Option<ValidIpv6>, Invalid> {
        let (_, aux6) = parse_aux(&self.aux_addresses)?;
        // An IPv6 value in an IPv4 field: name the flag that was missing
        // rather than fail to parse it as IPv4.
        for (what, v) in [
            ("subnet", &self.subnet),
            ("gateway", &self.gateway),
            ("ip-range", &self.ip_range),
        ] {
            if let Some(v) = v.as_deref().filter(|v| is_v6(v)) {
                return invalid(format!(
                    "{what} {v} is IPv6: give it as the IPv6 {what} of a network created with --ipv6"
                ));
            }
        }
        if !self.ipv6 {
            if let Some(v) = self
                .subnet6
                .as_ref()
                .or(self.gateway6.as_ref())
                .or(self.ip_range6.as_ref())
            {
                return invalid(format!("{v} is IPv6, but the network is not: pass --ipv6"));
            }
            if self.options.contains_key(OPT_GATEWAY_MODE_V6) {
                return invalid(format!("{OPT_GATEWAY_MODE_V6} needs --ipv6"));
            }
            if let Some((name, ip)) = aux6.iter().next() {
                return invalid(format!(
                    "auxiliary address {name}={ip} is IPv6, but the network is not: pass --ipv6"
                ));
            }
            return Ok(None);
        }
        let subnet = self
            .subnet6
            .as_deref()
            .map(|s| parse_net6("IPv6 subnet", s))
            .transpose()?;
        let gateway = self
            .gateway6
            .as_deref()
            .map(|g| {
                g.parse::<Ipv6Addr>().map_err(|_| {
                    Invalid(format!(
                        "invalid IPv6 gateway {g:?}: expected an IPv6 address"
                    ))
                })
            })
            .transpose()?;
        let ip_range = self
            .ip_range6
            .as_deref()
            .map(|s| parse_net6("IPv6 ip-range", s))
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some() || !aux6.is_empty()) {
            return invalid("an IPv6 gateway, ip-range or auxiliary address needs an IPv6 subnet");
        }
        if let (Some(net), Some(gw)) = (subnet, gateway)
            && (!net.contains(&gw) || gw == net.network())
        {
            return invalid(format!(
                "IPv6 gateway {gw} is not a usable address of subnet {net}"
            ));
        }
        if let (Some(net), Some(r)) = (subnet, ip_range)
            && !net.contains(&r)
        {
            return invalid(format!("IPv6 ip-range {r} is not inside subnet {net}"));
        }
        if let Some(net) = subnet {
            let gw = gateway.unwrap_or_else(|| crate::ipam6::default_gateway6(net));
            check_aux(&aux6, |a| net.contains(a), &net, gw)?;
        }
        let nat = nat_mode(&self.options, OPT_GATEWAY_MODE_V6)?;
        Ok(Some(ValidIpv6 {
            subnet,
            gateway,
            ip_range,
            masquerade: nat && bool_option(&self.options, OPT_MASQUERADE)? && !self.internal,
            aux_addresses: aux6,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sides_are_validated_naming_the_value() {
        let base = NetworkCreate {
            name: "n".into(),
            ipv6: true,
            subnet6: Some("fd00:1::/64".into()),
            ..Default::default()
        };
        let v = base.validate().unwrap().ipv6.unwrap();
        assert_eq!(v.subnet.unwrap().to_string(), "fd00:1::/64");
        assert!(v.masquerade);
        let err = |f: &dyn Fn(&mut NetworkCreate)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        let e = err(&|c| c.ipv6 = false);
        assert!(e.contains("fd00:1::/64") && e.contains("--ipv6"), "{e}");
        let e = err(&|c| c.subnet = Some("fd00:2::/64".into()));
        assert!(e.contains("fd00:2::/64") && e.contains("IPv6"), "{e}");
        let e = err(&|c| c.subnet6 = Some("fd00:1::/121".into()));
        assert!(e.contains("/121") && e.contains("/120"), "{e}");
        let e = err(&|c| c.subnet6 = Some("ff02::/64".into()));
        assert!(e.contains("multicast"), "{e}");
        let e = err(&|c| c.subnet6 = Some("::ffff:10.0.0.0/120".into()));
        assert!(e.contains("IPv4-mapped"), "{e}");
        let e = err(&|c| c.subnet6 = Some("10.0.0.0/24".into()));
        assert!(e.contains("IPv6 CIDR"), "{e}");
        let e = err(&|c| c.gateway6 = Some("fd00:1::".into()));
        assert!(e.contains("fd00:1::") && e.contains("usable"), "{e}");
        let e = err(&|c| c.ip_range6 = Some("fd00:2::/80".into()));
        assert!(e.contains("not inside"), "{e}");
        let e = err(&|c| {
            c.subnet6 = None;
            c.gateway6 = Some("fd00:1::1".into());
        });
        assert!(e.contains("needs an IPv6 subnet"), "{e}");
        let mut routed = base.clone();
        routed
            .options
            .insert(OPT_GATEWAY_MODE_V6.into(), "routed".into());
        assert!(!routed.validate().unwrap().ipv6.unwrap().masquerade);
        let mut internal = base.clone();
        internal.internal = true;
        assert!(!internal.validate().unwrap().ipv6.unwrap().masquerade);
        let mut v4only = NetworkCreate {
            name: "n".into(),
            ..Default::default()
        };
        v4only
            .options
            .insert(OPT_GATEWAY_MODE_V6.into(), "nat".into());
        assert!(v4only.validate().unwrap_err().0.contains("needs --ipv6"));
    }
}
