//! Checking an attachment against what its runtime was told (the CNI
//! plugin's CHECK): the store's reservation, the host veth on its bridge,
//! and the interface, address and routes in the namespace.

use std::net::IpAddr;
use std::path::Path;

use super::Netd;
use crate::error::{Error, kernel};
use crate::kernel::{Host, NamespaceOps, Netlink};
use crate::model::*;
use crate::store::Ref;

/// What the runtime was told about an attachment (a CNI `prevResult`), as
/// it wrote it: compared as text, the way the runtime will read it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedAttachment {
    pub mac: Option<String>,
    /// CIDRs on the interface.
    pub addresses: Vec<String>,
    /// `(dst, gateway)`: routes through the attachment's gateways.
    pub routes: Vec<(String, Option<String>)>,
}

/// How an attachment differs from what was expected, or why it could not
/// be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("namespace {0} is gone")]
    NamespaceGone(String),
    #[error("sandbox {0} not found")]
    UnknownSandbox(String),
    #[error("sandbox {sandbox} has no {ifname} on network {network}")]
    NoEndpoint {
        sandbox: String,
        ifname: String,
        network: String,
    },
    #[error("network {0} is not a bridge network")]
    NotBridge(Name),
    #[error("address {} of prevResult is not reserved: the store has {reserved} for {sandbox}", .expected.join(", "))]
    NotReserved {
        expected: Vec<String>,
        reserved: String,
        sandbox: String,
    },
    #[error("host interface {0} is missing")]
    HostVethMissing(IfName),
    #[error("bridge {0} is missing")]
    BridgeMissing(IfName),
    #[error("host interface {veth} is not on bridge {bridge}")]
    NotOnBridge { veth: IfName, bridge: IfName },
    #[error("interface {ifname} is missing in {netns}")]
    InterfaceMissing { ifname: String, netns: String },
    #[error("interface {ifname} has MAC {have}, prevResult says {want}")]
    Mac {
        ifname: String,
        have: String,
        want: String,
    },
    #[error("interface {ifname} lacks address {address}")]
    LacksAddress { ifname: String, address: String },
    #[error("the default route via {} is missing in {netns}", .gateway.as_deref().unwrap_or("?"))]
    DefaultRoute {
        gateway: Option<String>,
        netns: String,
    },
    #[error("the route to {dst} is missing in {netns}")]
    Route { dst: String, netns: String },
    #[error(transparent)]
    Netd(#[from] Error),
}

fn mac_text(bytes: Option<&[u8]>) -> String {
    match bytes.and_then(|b| <[u8; 6]>::try_from(b).ok()) {
        Some(m) => Mac(m).to_string(),
        None => String::new(),
    }
}

fn read_failed(what: &'static str) -> impl Fn(anyhow::Error) -> CheckError {
    move |e| CheckError::Netd(kernel(e.context(what)))
}

/// The checks read the kernel through netlink directly: the kernel seams
/// have no reads of a namespace's links, addresses and routes yet, so
/// CHECK is the real kernel's only.
impl Netd<Host> {
    /// Check sandbox `sandbox`'s attachment at `ifname` in `netns` on
    /// `network` against `want`: the first difference found is the error.
    pub async fn check_attachment(
        &self,
        network: &str,
        sandbox: &str,
        ifname: &str,
        netns: &str,
        want: &ExpectedAttachment,
    ) -> Result<(), CheckError> {
        if !self.k.is_netns(Path::new(netns)) {
            return Err(CheckError::NamespaceGone(netns.to_string()));
        }
        let sb = match self.inspect_sandbox(Ref::Name(sandbox)) {
            Ok(sb) => sb,
            Err(Error::NotFound(_)) => {
                return Err(CheckError::UnknownSandbox(sandbox.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let ep = sb
            .endpoints
            .iter()
            .find(|x| x.network_name.as_str() == network && x.endpoint.ifname.as_str() == ifname)
            .ok_or_else(|| CheckError::NoEndpoint {
                sandbox: sandbox.to_string(),
                ifname: ifname.to_string(),
                network: network.to_string(),
            })?;
        let net = self.network(Ref::Name(network))?;
        let b = net
            .bridge()
            .ok_or(CheckError::NotBridge(net.name.clone()))?;
        check_reserved(&ep.endpoint, b, want, sandbox)?;
        // The host side: the veth, on the network's bridge.
        let read = read_failed("cannot read the host's interfaces");
        let hv = self
            .host()
            .link(ep.host_veth.as_str())
            .await
            .map_err(&read)?
            .ok_or_else(|| CheckError::HostVethMissing(ep.host_veth.clone()))?;
        let bridge = self
            .host()
            .link(b.bridge.as_str())
            .await
            .map_err(&read)?
            .ok_or_else(|| CheckError::BridgeMissing(b.bridge.clone()))?;
        if hv.controller != Some(bridge.index) {
            return Err(CheckError::NotOnBridge {
                veth: ep.host_veth.clone(),
                bridge: b.bridge.clone(),
            });
        }
        // The namespace's side: the interface, its MAC and address, the routes.
        let inside = Netlink::in_netns(Path::new(netns))
            .map_err(read_failed("cannot open the container's namespace"))?;
        let read = read_failed("cannot read the container's network");
        let link = inside.link(ifname).await.map_err(&read)?.ok_or_else(|| {
            CheckError::InterfaceMissing {
                ifname: ifname.to_string(),
                netns: netns.to_string(),
            }
        })?;
        let mac = mac_text(link.mac.as_deref());
        if let Some(m) = &want.mac
            && !m.eq_ignore_ascii_case(&mac)
        {
            return Err(CheckError::Mac {
                ifname: ifname.to_string(),
                have: mac,
                want: m.clone(),
            });
        }
        let addrs = inside.addresses(link.index).await.map_err(&read)?;
        if let Some(a) = want
            .addresses
            .iter()
            .find(|a| !addrs.iter().any(|x| same_net(x, a)))
        {
            return Err(CheckError::LacksAddress {
                ifname: ifname.to_string(),
                address: a.clone(),
            });
        }
        for (dst, gw) in &want.routes {
            let default = match dst.parse::<ipnet::IpNet>() {
                Ok(n) if n.prefix_len() == 0 => Some(n.addr().is_ipv6()),
                _ => None,
            };
            if let Some(v6) = default {
                let have = if v6 {
                    inside
                        .default_gateway6()
                        .await
                        .map_err(&read)?
                        .map(IpAddr::V6)
                } else {
                    inside
                        .default_gateway()
                        .await
                        .map_err(&read)?
                        .map(IpAddr::V4)
                };
                if !same_address(have, gw.as_deref()) {
                    return Err(CheckError::DefaultRoute {
                        gateway: gw.clone(),
                        netns: netns.to_string(),
                    });
                }
            } else {
                let dsts = inside.route_destinations().await.map_err(&read)?;
                if !dsts.iter().any(|d| same_net(d, dst)) {
                    return Err(CheckError::Route {
                        dst: dst.clone(),
                        netns: netns.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A CIDR as the runtime wrote it is `have`: IPv6 has many spellings of
/// one address (`fd00::0:2`, upper case), so text that parses is compared
/// parsed.
fn same_net(have: &ipnet::IpNet, want: &str) -> bool {
    match want.parse::<ipnet::IpNet>() {
        Ok(w) => w == *have,
        Err(_) => have.to_string() == want,
    }
}

fn same_address(have: Option<IpAddr>, want: Option<&str>) -> bool {
    match (have, want) {
        (Some(h), Some(w)) => w.parse::<IpAddr>().is_ok_and(|w| w == h),
        (None, None) => true,
        _ => false,
    }
}

/// The store's reservations for `ep` (its IPv4 address, and its IPv6 one
/// on a dual-stack network) must be among the expected addresses.
fn check_reserved(
    ep: &Endpoint,
    b: &BridgeConfig,
    want: &ExpectedAttachment,
    sandbox: &str,
) -> Result<(), CheckError> {
    let mut reserved: Vec<ipnet::IpNet> = Vec::with_capacity(2);
    if let (Some(ip), Some(v4)) = (ep.ip, &b.ipv4)
        && let Ok(n) = ipnet::Ipv4Net::new(ip, v4.subnet.prefix_len())
    {
        reserved.push(n.into());
    }
    if let (Some(ip6), Some(v6)) = (ep.ip6, &b.ipv6)
        && let Ok(n) = ipnet::Ipv6Net::new(ip6, v6.subnet.prefix_len())
    {
        reserved.push(n.into());
    }
    match reserved
        .iter()
        .find(|r| !want.addresses.iter().any(|a| same_net(r, a)))
    {
        None => Ok(()),
        Some(r) => Err(CheckError::NotReserved {
            expected: want.addresses.clone(),
            reserved: r.to_string(),
            sandbox: sandbox.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            id: Id::random(),
            network: Id::random(),
            sandbox: Id::random(),
            ifname: "eth0".parse().unwrap(),
            ip: Some("10.1.0.2".parse().unwrap()),
            ip6: None,
            mac: Mac::for_ip("10.1.0.2".parse().unwrap()),
            aliases: Vec::new(),
            ports: Vec::new(),
            gw_priority: 0,
            link_local_ips: Vec::new(),
            sysctls: Vec::new(),
            egress_ifb: false,
        }
    }

    fn bridge() -> BridgeConfig {
        let n = crate::model::fixtures::network("x", "10.1.0.0/24");
        n.bridge().cloned().expect("a bridge network")
    }

    #[test]
    fn the_reservation_must_be_expected_with_its_prefix() {
        let want = |a: &str| ExpectedAttachment {
            addresses: vec![a.to_string()],
            ..Default::default()
        };
        assert!(check_reserved(&endpoint(), &bridge(), &want("10.1.0.2/24"), "s").is_ok());
        let e = check_reserved(&endpoint(), &bridge(), &want("10.1.0.9/24"), "s").unwrap_err();
        assert!(matches!(e, CheckError::NotReserved { .. }));
        assert!(
            e.to_string()
                .contains("not reserved: the store has 10.1.0.2/24"),
            "{e}"
        );
        assert!(check_reserved(&endpoint(), &bridge(), &want("10.1.0.2/16"), "s").is_err());
    }

    #[test]
    fn a_dual_stack_reservation_needs_both_addresses_in_any_spelling() {
        let b = crate::model::fixtures::with_ipv6(
            crate::model::fixtures::network("x", "10.1.0.0/24"),
            "fd00:1::/64",
        );
        let b = b.bridge().cloned().expect("a bridge network");
        let mut ep = endpoint();
        ep.ip6 = Some("fd00:1::2".parse().unwrap());
        let want = |a: &[&str]| ExpectedAttachment {
            addresses: a.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(check_reserved(&ep, &b, &want(&["10.1.0.2/24", "fd00:1::2/64"]), "s").is_ok());
        assert!(check_reserved(&ep, &b, &want(&["10.1.0.2/24", "FD00:1:0::2/64"]), "s").is_ok());
        let e = check_reserved(&ep, &b, &want(&["10.1.0.2/24"]), "s").unwrap_err();
        assert!(e.to_string().contains("the store has fd00:1::2/64"), "{e}");
        let e = check_reserved(&ep, &b, &want(&["10.1.0.2/24", "fd00:1::3/64"]), "s");
        assert!(e.is_err());
        assert!(same_address(
            Some("fd00::1".parse().unwrap()),
            Some("fd00:0::1")
        ));
        assert!(!same_address(None, Some("fd00::1")));
        assert!(!same_address(Some("10.0.0.1".parse().unwrap()), None));
        assert!(same_address(None, None));
    }

    #[test]
    fn mismatches_name_what_is_missing() {
        let e = CheckError::DefaultRoute {
            gateway: None,
            netns: "/run/netns/x".into(),
        };
        assert_eq!(
            e.to_string(),
            "the default route via ? is missing in /run/netns/x"
        );
        assert_eq!(
            CheckError::HostVethMissing("nd-1".parse().unwrap()).to_string(),
            "host interface nd-1 is missing"
        );
        assert_eq!(mac_text(Some(&[2, 0x42, 10, 1, 0, 2])), "02:42:0a:01:00:02");
        assert_eq!(mac_text(Some(&[1])), "");
    }
}
