//! A configuration as netd's requests: the network to ensure and the
//! endpoint to make.

use netd::model::{EndpointRequest, NetworkCreate};
use netd::ops::ensure::NetworkSpec;

use crate::conf::NetConf;
use crate::env::Env;
use crate::error::{CniError, code};

/// The netd network a configuration asks for; `lease` is a delegated IPAM
/// plugin's address and gateway, used when the configuration has none.
pub fn network_request(
    conf: &NetConf,
    lease: Option<(ipnet::Ipv4Net, Option<std::net::Ipv4Addr>)>,
) -> NetworkCreate {
    NetworkCreate {
        name: conf.name.clone(),
        driver: "bridge".into(),
        subnet: conf
            .subnet
            .clone()
            .or_else(|| lease.map(|(a, _)| a.trunc().to_string())),
        gateway: conf
            .gateway
            .clone()
            .or_else(|| lease.and_then(|(_, g)| g).map(|g| g.to_string())),
        ip_range: conf.ip_range.clone(),
        internal: conf.internal.unwrap_or(false),
        options: conf.options(),
        labels: [("org.netd.cni".to_string(), "true".to_string())].into(),
        ..Default::default()
    }
}

/// The network as netd ensures it: created from [`network_request`] when
/// missing; an existing one must have the keys the configuration gives
/// (`internal`, `ipMasq` and `isolate` only when said).
pub fn network_spec(
    conf: &NetConf,
    lease: Option<(ipnet::Ipv4Net, Option<std::net::Ipv4Addr>)>,
) -> NetworkSpec {
    NetworkSpec {
        create: network_request(conf, lease),
        internal: conf.internal,
        masquerade: conf.ip_masq,
        isolate: conf.isolate,
    }
}

/// The endpoint an ADD asks for: the runtime's capabilities (ips, ports,
/// mac, aliases) and `CNI_IFNAME`, validated as netd validates any request.
pub fn endpoint_request(conf: &NetConf, e: &Env) -> Result<EndpointRequest, CniError> {
    let rc = &conf.runtime_config;
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    if rc.ips.len() > 1 {
        return Err(bad(format!(
            "runtimeConfig.ips: one IPv4 address per attachment, got {:?}",
            rc.ips
        )));
    }
    let ip = rc
        .ips
        .first()
        .map(|s| {
            s.split('/')
                .next()
                .unwrap_or(s)
                .parse()
                .map_err(|_| bad(format!("runtimeConfig.ips: invalid IPv4 address {s:?}")))
        })
        .transpose()?;
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
        ip6: None,
        aliases: conf.names(&e.args),
        ports,
        mac,
        ifname: Some(ifname),
    };
    req.validate().map_err(|err| bad(err.0))?;
    Ok(req)
}
