//! The bodies of Docker's network connect and disconnect, translated to
//! netd's endpoint request.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{EndpointOpts, EndpointRequest, Mac};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: Option<String>,
    #[serde(default, rename = "LinkLocalIPs")]
    pub link_local_ips: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub gw_priority: Option<i64>,
    #[serde(default)]
    pub links: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectRequest {
    pub container: String,
    #[serde(default)]
    pub endpoint_config: Option<EndpointSettings>,
}

impl ConnectRequest {
    pub fn endpoint(&self) -> Result<EndpointRequest, String> {
        let Some(ec) = &self.endpoint_config else {
            return Ok(EndpointRequest::default());
        };
        // Refused, not dropped: each would change what the container gets.
        let opts = EndpointOpts::parse(
            ec.driver_opts
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| format!("EndpointConfig.DriverOpts: {}", e.0))?;
        if let Some(l) = ec.links.as_ref().filter(|l| !l.is_empty()) {
            return Err(format!(
                "EndpointConfig.Links {l:?} (legacy links) are not supported: use aliases"
            ));
        }
        let ip = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("invalid IPv4 address {s:?}")))
            .transpose()?;
        let ip6 = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv6_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("invalid IPv6 address {s:?}")))
            .transpose()?;
        // Checked as link-local (and counted) by the endpoint's validation.
        let link_local_ips = ec
            .ipam_config
            .as_ref()
            .and_then(|c| c.link_local_ips.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("invalid link-local address {s:?} in LinkLocalIPs"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mac = ec
            .mac_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Mac>().map_err(|e| e.to_string()))
            .transpose()?;
        Ok(EndpointRequest {
            ip,
            ip6,
            aliases: ec.aliases.clone().unwrap_or_default(),
            ports: vec![],
            mac,
            ifname: opts.ifname,
            gw_priority: ec.gw_priority.unwrap_or(0),
            link_local_ips,
            sysctls: opts.sysctls,
            egress_ifb: false,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectRequest {
    pub container: String,
    #[serde(default)]
    pub force: bool,
}
