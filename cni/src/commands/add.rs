//! ADD: the lease from a delegated IPAM plugin if there is one, netd's
//! attach, the DNS hand-off, and the result in the configuration's version.

use netd::ops::attachment::{AttachError, AttachRequest, Attached};
use netd::ops::ensure::{EnsureError, Setting};
use netd_cni::{Attachment, CniError, Env, Lease, NetConf, code, result, sandbox_name};
use serde_json::Value;

use super::{check_netns, ipam_type, netd_error, open};
use crate::{dns, ipam, shape};

pub async fn add(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<Value, CniError> {
    let netns = e.netns.clone().unwrap_or_default();
    check_netns(&netns)?;
    let req = netd_cni::endpoint_request(conf, e)?;
    let Some(kind) = ipam_type(conf) else {
        return add_with(conf, e, &netns, req, None).await;
    };
    let lease = netd_cni::lease(&ipam::exec(stdin, kind, "ADD", e)?);
    let out = match lease {
        Ok(lease) => add_with(conf, e, &netns, req, Some(&lease)).await,
        Err(err) => Err(err),
    };
    if out.is_err() {
        // Give the address back: nothing of this ADD stays.
        if let Err(undo) = ipam::exec(stdin, kind, "DEL", e) {
            eprintln!("netd-cni: undo: ipam DEL failed: {}", undo.msg);
        }
    }
    out
}

/// With a delegated IPAM and no `subnet`/`gateway` keys, the lease's subnet
/// and gateway are the network's, and its address the container's.
async fn add_with(
    conf: &NetConf,
    e: &Env,
    netns: &str,
    mut endpoint: netd::model::EndpointRequest,
    lease: Option<&Lease>,
) -> Result<Value, CniError> {
    if let Some(l) = lease {
        endpoint.ip = l.address.map(|a| a.addr());
        if let Some(a) = l.address6 {
            if conf.ipv6 == Some(false) {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!(
                        "the ipam plugin leased the IPv6 address {a}, but the configuration has ipv6 false"
                    ),
                ));
            }
            endpoint.ip6 = Some(a.addr());
        }
    }
    let spec = netd_cni::network_spec(conf, lease);
    let req = AttachRequest {
        sandbox: sandbox_name(&e.container),
        netns: netns.to_string(),
        endpoint,
        dns: conf.conventions.upstreams.clone(),
    };
    let netd = open(conf).await?;
    // The daemon adds the names while the interfaces are made and the result
    // is put together: begun once a new sandbox is recorded. Should the ADD
    // fail, the daemon's full re-read shortly after drops them again.
    // Ports on [::1] need the daemon as DNS does (its proxy serves them).
    let daemon = conf.dns() || dns::proxied(conf);
    let mut handoff = None;
    let attached = netd
        .attach(&spec, &req, |sb| {
            if daemon {
                handoff = Some(dns::begin(conf, sb.name.as_str()));
            }
        })
        .await
        .map_err(|err| attach_error(err, conf, e))?;
    if let Some(bw) = &conf.conventions.bandwidth {
        let ep = &attached.endpoint;
        let ifb = ep.endpoint.ifb();
        if let Err(err) = shape::apply(bw, ep.host_veth.as_str(), ifb.as_str(), attached.mtu).await
        {
            // Nothing of this ADD stays: the attachment goes with the error
            // (apply deleted the ifb it made; the veth's qdiscs go with it).
            if let Err(undo) = netd
                .detach(&conf.name, &req.sandbox, &e.ifname, Some(netns))
                .await
            {
                eprintln!("netd-cni: undo after tc failed: {undo}");
            }
            return Err(err);
        }
    }
    if daemon && handoff.is_none() {
        handoff = Some(dns::begin(conf, &req.sandbox));
    }
    let mut out = result(
        &conf.cni_version,
        &attachment(conf, &attached, netns),
        conf.prev_result.as_ref(),
    );
    out["dns"] = conf.conventions.result_dns(&out["dns"]);
    if let Some(h) = handoff {
        h.finish(conf).await;
    }
    Ok(out)
}

fn attachment(conf: &NetConf, a: &Attached, netns: &str) -> Attachment {
    let ep = &a.endpoint;
    Attachment {
        host_ifname: ep.host_veth.to_string(),
        host_mac: a.host_mac.map(|m| m.to_string()).unwrap_or_default(),
        ifname: ep.endpoint.ifname.to_string(),
        mac: ep.endpoint.mac.to_string(),
        mtu: a.mtu,
        netns: netns.to_string(),
        address: match (ep.endpoint.ip, &a.bridge.ipv4) {
            (Some(ip), Some(v4)) => Some(format!("{ip}/{}", v4.subnet.prefix_len())),
            _ => None,
        },
        gateway: a
            .bridge
            .ipv4
            .as_ref()
            .filter(|_| ep.endpoint.ip.is_some())
            .map(|v4| v4.gateway.to_string()),
        default_route: a.default_route,
        address6: match (ep.endpoint.ip6, &a.bridge.ipv6) {
            (Some(ip6), Some(v6)) => Some(format!("{ip6}/{}", v6.subnet.prefix_len())),
            _ => None,
        },
        gateway6: a
            .bridge
            .ipv6
            .as_ref()
            .filter(|_| ep.endpoint.ip6.is_some())
            .map(|v6| v6.gateway.to_string()),
        default_route6: a.default_route6,
        dns: conf.dns(),
    }
}

/// The configuration's key for a network setting.
fn key(s: Setting) -> &'static str {
    match s {
        Setting::Subnet => "subnet",
        Setting::Gateway => "gateway",
        Setting::IpRange => "ipRange",
        Setting::Bridge => "bridge",
        Setting::Mtu => "mtu",
        Setting::Internal => "internal",
        Setting::Masquerade => "ipMasq",
        Setting::Isolate => "isolate",
        Setting::Ipv4 => "ipv4",
        Setting::Ipv6 => "ipv6",
        Setting::Subnet6 => "subnet6",
        Setting::Gateway6 => "gateway6",
        Setting::IpRange6 => "ipRange6",
        Setting::Masquerade6 => "ipMasq6",
    }
}

fn attach_error(err: AttachError, conf: &NetConf, e: &Env) -> CniError {
    match err {
        AttachError::Network(EnsureError::Differs {
            network,
            differences,
        }) => CniError::new(
            code::INVALID_CONFIG,
            format!("network {network} exists with other settings than the configuration's"),
        )
        .details(
            differences
                .iter()
                .map(|d| {
                    format!(
                        "{}: the network has {}, the configuration {}",
                        key(d.setting),
                        d.have,
                        d.want
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        // The configuration's `bridge` names a link netd did not make.
        err @ AttachError::Network(EnsureError::InterfaceTaken { .. }) => CniError::new(
            code::INVALID_CONFIG,
            format!("bridge of network {}: {err}", conf.name),
        ),
        err @ AttachError::Network(EnsureError::NotBridge(_)) => {
            CniError::new(code::INVALID_CONFIG, err.to_string())
        }
        AttachError::Network(EnsureError::Netd(err)) | AttachError::Netd(err) => netd_error(err),
        AttachError::OtherNamespace { sandbox, netns } => CniError::new(
            code::INVALID_CONFIG,
            format!(
                "sandbox {sandbox} (container {}) is already attached in namespace {netns}",
                e.container
            ),
        ),
        err @ AttachError::InterfaceExists { .. } => CniError::new(code::GENERIC, err.to_string()),
        AttachError::NoIpv6 { network, ip6 } => CniError::new(
            code::INVALID_CONFIG,
            format!(
                "{ip6} is IPv6, but network {network} has no IPv6 subnet: give the configuration subnet6 (or \"ipv6\": true) for a dual-stack network"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use netd::ops::ensure::Difference;

    use super::*;

    fn conf() -> NetConf {
        NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"netd-cni"}"#).unwrap()
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

    fn mapped(err: AttachError) -> CniError {
        attach_error(err, &conf(), &env())
    }

    #[test]
    fn a_taken_bridge_name_is_a_config_error_naming_the_link() {
        let e = mapped(
            EnsureError::InterfaceTaken {
                name: "eth9".into(),
                kind: "veth".into(),
            }
            .into(),
        );
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("eth9") && e.msg.contains("network n"), "{e}");
    }

    #[test]
    fn differences_are_named_by_their_configuration_keys() {
        let e = mapped(
            EnsureError::Differs {
                network: "n".parse().unwrap(),
                differences: vec![Difference {
                    setting: Setting::IpRange,
                    have: "10.0.0.0/24".into(),
                    want: "10.0.0.0/25".into(),
                }],
            }
            .into(),
        );
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert_eq!(
            e.details,
            "ipRange: the network has 10.0.0.0/24, the configuration 10.0.0.0/25"
        );
    }

    #[test]
    fn codes_follow_the_kind_of_netd_s_error() {
        let code_of = |e: netd::Error| mapped(e.into()).code;
        assert_eq!(code_of(netd::Error::Busy("lock".into())), code::TRY_LATER);
        assert_eq!(
            code_of(netd::Error::Invalid("x".into())),
            code::INVALID_CONFIG
        );
        assert_eq!(code_of(netd::Error::Conflict("x".into())), code::GENERIC);
        assert_eq!(
            code_of(netd::Error::Kernel(netd::kernel::KernelError::failed("x"))),
            code::GENERIC
        );
        let other = mapped(AttachError::OtherNamespace {
            sandbox: "ctr".into(),
            netns: "/run/netns/y".into(),
        });
        assert_eq!(other.code, code::INVALID_CONFIG);
        assert!(other.msg.contains("container ctr"), "{other}");
        let v6 = mapped(AttachError::NoIpv6 {
            network: "n".into(),
            ip6: "fd00::8".parse().unwrap(),
        });
        assert_eq!(v6.code, code::INVALID_CONFIG);
        assert!(
            v6.msg.contains("fd00::8") && v6.msg.contains("subnet6"),
            "{v6}"
        );
        let busy = mapped(EnsureError::Netd(netd::Error::Busy("x".into())).into());
        assert_eq!(busy.code, code::TRY_LATER);
    }
}
