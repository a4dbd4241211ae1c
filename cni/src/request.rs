//! A configuration as netd's requests: the network to ensure and the
//! endpoint to make.

use std::net::IpAddr;

use netd::model::{EndpointRequest, NetworkCreate};
use netd::ops::ensure::NetworkSpec;

use crate::conf::NetConf;
use crate::conventions::{check_cni_args, static_ips};
use crate::env::Env;
use crate::error::{CniError, code};
use crate::lease::Lease;

/// The netd network a configuration asks for; `lease` is a delegated IPAM
/// plugin's addresses and gateways, used where the configuration has none.
pub fn network_request(conf: &NetConf, lease: Option<&Lease>) -> NetworkCreate {
    let lease6 = lease.and_then(|l| l.address6);
    let ipv6 = conf.ipv6.unwrap_or(conf.wants_ipv6() || lease6.is_some());
    let mut options = conf.options();
    if ipv6 && conf.ip_masq6 == Some(false) {
        options.insert(
            netd::model::OPT_GATEWAY_MODE_V6.to_string(),
            "routed".to_string(),
        );
    }
    NetworkCreate {
        name: conf.name.clone(),
        driver: "bridge".into(),
        subnet: conf
            .subnet
            .clone()
            .or_else(|| lease.and_then(|l| l.address).map(|a| a.trunc().to_string())),
        gateway: conf
            .gateway
            .clone()
            .or_else(|| lease.and_then(|l| l.gateway).map(|g| g.to_string())),
        ip_range: conf.ip_range.clone(),
        // An IPv6-only lease makes an IPv6-only network, as `ipv4: false` does.
        ipv4: conf
            .ipv4
            .or_else(|| lease.filter(|l| l.address.is_none()).map(|_| false)),
        ipv6,
        subnet6: conf
            .subnet6
            .clone()
            .or_else(|| lease6.map(|a| a.trunc().to_string())),
        gateway6: conf
            .gateway6
            .clone()
            .or_else(|| lease.and_then(|l| l.gateway6).map(|g| g.to_string())),
        ip_range6: conf.ip_range6.clone(),
        internal: conf.internal.unwrap_or(false),
        options,
        labels: [("org.netd.cni".to_string(), "true".to_string())].into(),
        ..Default::default()
    }
}

/// The network as netd ensures it: created from [`network_request`] when
/// missing; an existing one must have the keys the configuration gives
/// (`internal`, `ipMasq` and `isolate` only when said).
pub fn network_spec(conf: &NetConf, lease: Option<&Lease>) -> NetworkSpec {
    let create = network_request(conf, lease);
    // Dual-stack is required when asked for (by a key or an IPv6 lease);
    // IPv4 only only when `ipv6: false` says so.
    let ipv6 = match conf.ipv6 {
        Some(v) => Some(v),
        None => create.ipv6.then_some(true),
    };
    NetworkSpec {
        create,
        internal: conf.internal,
        masquerade: conf.ip_masq,
        isolate: conf.isolate,
        ipv6,
        masquerade6: conf.ip_masq6,
    }
}

/// The endpoint an ADD asks for: the runtime's capabilities (ips, ports,
/// mac, aliases) and `CNI_IFNAME`, validated as netd validates any request.
pub fn endpoint_request(conf: &NetConf, e: &Env) -> Result<EndpointRequest, CniError> {
    let rc = &conf.runtime_config;
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    check_cni_args(&e.args)?;
    let (mut ip, mut ip6) = (None, None);
    let asked = static_ips(conf, &e.args);
    for (from, s) in &asked {
        // The prefix, if given, is the network's: only the address is used.
        let addr = s
            .split('/')
            .next()
            .unwrap_or(s)
            .parse::<IpAddr>()
            .map_err(|_| bad(format!("{from}: invalid IP address {s:?}")))?;
        // The same address from two sources is one request.
        let had = match addr {
            IpAddr::V4(a) => ip.replace(a).map(IpAddr::V4),
            IpAddr::V6(a) => ip6.replace(a).map(IpAddr::V6),
        };
        if had.is_some_and(|h| h != addr) {
            let family = if addr.is_ipv6() { "IPv6" } else { "IPv4" };
            let all: Vec<String> = asked.iter().map(|(f, s)| format!("{s} ({f})")).collect();
            return Err(bad(format!(
                "{from}: one {family} address per attachment, got {}",
                all.join(", ")
            )));
        }
    }
    if let (Some(a), Some(false)) = (ip6, conf.ipv6) {
        return Err(bad(format!(
            "runtimeConfig.ips: {a} is IPv6, but the configuration has ipv6 false"
        )));
    }
    let ports = rc
        .port_mappings
        .iter()
        .map(|p| {
            p.spec().parse().map_err(|err: netd::model::Invalid| {
                bad(format!("runtimeConfig.portMappings: {}", err.0))
            })
        })
        .collect::<Result<_, _>>()?;
    let mac = rc
        .mac
        .as_deref()
        .map(|m| {
            m.parse()
                .map_err(|err: netd::model::Invalid| bad(format!("runtimeConfig.mac: {}", err.0)))
        })
        .transpose()?;
    let ifname = e
        .ifname
        .parse()
        .map_err(|err: netd::model::Invalid| CniError::new(code::INVALID_ENV, err.0))?;
    let req = EndpointRequest {
        ip,
        ip6,
        aliases: conf.names(&e.args),
        ports,
        mac,
        ifname: Some(ifname),
        // CNI has no priority: the first network's default route stands.
        gw_priority: 0,
        // CNI has no link-local addresses of its own to ask for.
        link_local_ips: Vec::new(),
        sysctls: Vec::new(),
        // Recorded with the endpoint, so the daemon deletes the ifb too
        // when it removes the endpoint (`netd sandbox rm`).
        egress_ifb: conf
            .conventions
            .bandwidth
            .as_ref()
            .is_some_and(|b| b.egress.is_some()),
    };
    req.validate().map_err(|err| bad(err.0))?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> NetConf {
        NetConf::parse(
            format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"netd-cni","subnet":"10.1.0.0/24"{extra}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn env() -> Env {
        Env::from(|k| match k {
            "CNI_COMMAND" => Some("ADD".into()),
            "CNI_CONTAINERID" => Some("ctr".into()),
            "CNI_NETNS" => Some("/run/netns/x".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn forward_accept_becomes_the_network_option() {
        let s = network_spec(&conf(r#","forwardAccept":"ip/filter/FORWARD""#), None);
        assert_eq!(
            s.create
                .options
                .get(netd::model::OPT_FORWARD_ACCEPT)
                .map(String::as_str),
            Some("ip/filter/FORWARD")
        );
        assert!(s.create.validate().is_ok());
        let none = network_spec(&conf(""), None);
        assert!(
            !none
                .create
                .options
                .contains_key(netd::model::OPT_FORWARD_ACCEPT)
        );
    }

    #[test]
    fn ipv6_keys_make_and_require_a_dual_stack_network() {
        let s = network_spec(
            &conf(r#","subnet6":"fd00:1::/64","gateway6":"fd00:1::9""#),
            None,
        );
        assert!(s.create.ipv6);
        assert_eq!(s.ipv6, Some(true));
        assert_eq!(s.create.subnet6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(s.create.gateway6.as_deref(), Some("fd00:1::9"));
        assert!(s.create.validate().unwrap().ipv6.is_some());
        let pool = network_spec(&conf(r#","ipv6":true"#), None);
        assert!(pool.create.ipv6 && pool.create.subnet6.is_none());
        let unsaid = network_spec(&conf(""), None);
        assert_eq!((unsaid.create.ipv6, unsaid.ipv6), (false, None));
        let v4 = network_spec(&conf(r#","ipv6":false"#), None);
        assert_eq!((v4.create.ipv6, v4.ipv6), (false, Some(false)));
        let routed = network_spec(&conf(r#","ipv6":true,"ipMasq6":false"#), None);
        assert_eq!(routed.masquerade6, Some(false));
        assert!(!routed.create.validate().unwrap().ipv6.unwrap().masquerade);
        let nat = network_spec(&conf(r#","ipv6":true"#), None);
        assert!(nat.create.validate().unwrap().ipv6.unwrap().masquerade);
        // Without IPv6 the key makes nothing (and no invalid option).
        let none = network_spec(&conf(r#","ipMasq6":false"#), None);
        assert!(none.create.validate().unwrap().ipv6.is_none());
        for bad in [
            r#","ipv6":false,"ipMasq6":false"#,
            r#","ipMasq":false,"ipMasq6":true"#,
        ] {
            let e = NetConf::parse(
                format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"netd-cni"{bad}}}"#).as_bytes(),
            )
            .unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad}");
            assert!(e.msg.contains("ipMasq6"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_ipv6_lease_makes_the_network_dual_stack() {
        let l = Lease {
            address: "10.9.0.5/24".parse().ok(),
            gateway: "10.9.0.1".parse().ok(),
            address6: "fd00:9::5/64".parse().ok(),
            gateway6: "fd00:9::1".parse().ok(),
        };
        let c = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"netd-cni"}"#).unwrap();
        let s = network_spec(&c, Some(&l));
        assert_eq!(s.ipv6, Some(true));
        assert_eq!(s.create.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(s.create.subnet6.as_deref(), Some("fd00:9::/64"));
        assert_eq!(s.create.gateway6.as_deref(), Some("fd00:9::1"));
        let v4 = network_spec(
            &c,
            Some(&Lease {
                address6: None,
                gateway6: None,
                ..l
            }),
        );
        assert_eq!((v4.create.ipv6, v4.ipv6), (false, None));
    }

    #[test]
    fn ips_one_per_family() {
        let with_ips = |ips: &str| conf(&format!(r#","runtimeConfig":{{"ips":{ips}}}"#));
        let r = endpoint_request(&with_ips(r#"["10.1.0.7/24","fd00:1::7/64"]"#), &env()).unwrap();
        assert_eq!(r.ip, "10.1.0.7".parse().ok());
        assert_eq!(r.ip6, "fd00:1::7".parse().ok());
        let r = endpoint_request(&with_ips(r#"["fd00:1::7"]"#), &env()).unwrap();
        assert_eq!((r.ip, r.ip6), (None, "fd00:1::7".parse().ok()));
        for (ips, word) in [
            (r#"["fd00:1::7/64","fd00:1::8/64"]"#, "one IPv6 address"),
            (r#"["10.1.0.7","10.1.0.8"]"#, "one IPv4 address"),
            (r#"["fd00:1::zz"]"#, "fd00:1::zz"),
        ] {
            let e = endpoint_request(&with_ips(ips), &env()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{ips}");
            assert!(e.msg.contains(word), "{ips}: {e}");
        }
        let off = conf(r#","ipv6":false,"runtimeConfig":{"ips":["fd00:1::7"]}"#);
        let e = endpoint_request(&off, &env()).unwrap_err();
        assert!(
            e.msg.contains("fd00:1::7") && e.msg.contains("ipv6 false"),
            "{e}"
        );
    }
}
