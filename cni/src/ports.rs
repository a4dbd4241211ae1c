//! CHECK of published ports: the elements netd's firewall plan has for an
//! endpoint, looked up in the kernel's `inet netd` maps, and the container
//! ports reachable at the container's own address: on a routed IPv6
//! network from outside (`direct6`), on a network with
//! `trusted_host_interfaces` from those (`trusted4`, `trusted6`). netd's nftables
//! adapter only writes (batches through nftnl); reading a map back needs a
//! set-element dump parser it does not have, so the plugin reads `nft
//! list table`'s text, which prints each element as `KEY : VALUE` with
//! the concatenations' parts joined by ` . `.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use netd::plan::firewall::PortElement;

use netd_cni::{CniError, code};

/// The map an element is in and its text as `nft list` prints it.
pub fn element_text(e: &PortElement) -> (&'static str, String) {
    let v6 = e.addr.is_ipv6();
    let value = format!("{} . {}", e.addr, e.port);
    match e.host_ip {
        None => (
            if v6 { "pub_any6" } else { "pub_any" },
            format!("{} . {} : {value}", e.proto, e.host_port),
        ),
        Some(h) => (
            if matches!(h, IpAddr::V6(_)) {
                "pub_addr6"
            } else {
                "pub_addr"
            },
            format!("{h} . {} . {} : {value}", e.proto, e.host_port),
        ),
    }
}

/// The sets that let a published port in at the container's own address
/// and its element there, as `nft list` prints it (`ADDR . PROTO . PORT`:
/// the container's address and port): `direct4`/`direct6` on a network
/// routed in that family, `trusted4`/`trusted6` on a network with trusted
/// host interfaces.
pub fn direct_texts(e: &PortElement) -> Vec<(&'static str, String)> {
    let text = format!("{} . {} . {}", e.addr, e.proto, e.port);
    let (direct, trusted) = if e.addr.is_ipv6() {
        ("direct6", "trusted6")
    } else {
        ("direct4", "trusted4")
    };
    [(e.direct, direct), (e.trusted, trusted)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, set)| (set, text.clone()))
        .collect()
}

/// The elements of every map and set of `nft list table` output, as
/// `(map or set, element)`.
pub fn parse_table(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut map: Option<String> = None;
    let mut in_elements = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line
            .strip_prefix("map ")
            .or_else(|| line.strip_prefix("set "))
        {
            map = rest.split_whitespace().next().map(str::to_string);
            continue;
        }
        let body = if let Some(rest) = line.strip_prefix("elements = {") {
            in_elements = true;
            rest
        } else if in_elements {
            line
        } else {
            continue;
        };
        let (body, done) = match body.strip_suffix('}') {
            Some(b) => (b, true),
            None => (body, false),
        };
        if let Some(m) = &map {
            for el in body.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                out.insert((m.clone(), el.to_string()));
            }
        }
        if done {
            in_elements = false;
        }
    }
    out
}

/// Every element of `want` is in the kernel's table, or a CHECK error
/// naming the first one missing.
pub fn check(want: &[PortElement]) -> Result<(), CniError> {
    if want.is_empty() {
        return Ok(());
    }
    let out = Command::new("nft")
        .args(["list", "table", "inet", "netd"])
        .output()
        .map_err(|e| {
            CniError::new(code::GENERIC, "cannot run nft to read back published ports")
                .details(e.to_string())
        })?;
    if !out.status.success() {
        return Err(CniError::new(
            code::GENERIC,
            "nftables table inet netd is missing: published ports are not in place",
        )
        .details(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let have = parse_table(&String::from_utf8_lossy(&out.stdout));
    for e in want {
        let (map, text) = element_text(e);
        if !have.contains(&(map.to_string(), text.clone())) {
            return Err(CniError::new(
                code::GENERIC,
                format!(
                    "published port {}/{} is missing from nftables map {map} (want {text})",
                    e.host_port, e.proto
                ),
            ));
        }
        // The container port is let in at the container's own address too
        // (ICMPv6 of routed IPv6 is a per-network rule, not an element).
        if let Some((set, text)) = direct_texts(e)
            .into_iter()
            .find(|(set, text)| !have.contains(&(set.to_string(), text.clone())))
        {
            let what = match set {
                "direct4" => "routed IPv4",
                "direct6" => "routed IPv6",
                _ => "trusted-interface",
            };
            return Err(CniError::new(
                code::GENERIC,
                format!(
                    "{what} port {}/{} of {} is missing from nftables set {set} (want {text})",
                    e.port, e.proto, e.addr
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use netd::model::Proto;

    use super::*;

    #[test]
    fn elements_as_nft_prints_them() {
        let table = "table inet netd {\n\tmap pub_any {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n\t\telements = { tcp . 8080 : 10.205.0.2 . 80,\n\t\t\t     udp . 53 : 10.205.0.3 . 53 }\n\t}\n\tmap pub_addr6 {\n\t\telements = { fd00::1 . tcp . 80 : fd00:1::2 . 80 }\n\t}\n}\n";
        let have = parse_table(table);
        let e = PortElement {
            host_ip: None,
            proto: Proto::Udp,
            host_port: 53,
            addr: "10.205.0.3".parse().unwrap(),
            port: 53,
            direct: false,
            trusted: false,
        };
        let (m, t) = element_text(&e);
        assert!(have.contains(&(m.to_string(), t)), "{have:?}");
        let e6 = PortElement {
            host_ip: "fd00::1".parse().ok(),
            proto: Proto::Tcp,
            host_port: 80,
            addr: "fd00:1::2".parse().unwrap(),
            port: 80,
            direct: false,
            trusted: false,
        };
        let (m, t) = element_text(&e6);
        assert_eq!(m, "pub_addr6");
        assert!(have.contains(&(m.to_string(), t)), "{have:?}");
        assert_eq!(have.len(), 3);
    }

    #[test]
    fn direct6_elements_as_nft_prints_them() {
        let table = "table inet netd {\n\tset bridges {\n\t\ttype ifname\n\t\telements = { \"netd0\" }\n\t}\n\tset direct6 {\n\t\ttype ipv6_addr . inet_proto . inet_service\n\t\telements = { fd00:1::2 . tcp . 80,\n\t\t\t     fd00:1::3 . udp . 53 }\n\t}\n}\n";
        let have = parse_table(table);
        let mut e = PortElement {
            host_ip: None,
            proto: Proto::Udp,
            host_port: 5353,
            addr: "fd00:1::3".parse().unwrap(),
            port: 53,
            direct: true,
            trusted: false,
        };
        let t = direct_texts(&e);
        assert_eq!(t, [("direct6", "fd00:1::3 . udp . 53".to_string())]);
        assert!(
            have.contains(&("direct6".to_string(), t[0].1.clone())),
            "{have:?}"
        );
        assert!(have.contains(&("bridges".to_string(), "\"netd0\"".to_string())));
        e.direct = false;
        assert_eq!(direct_texts(&e), []);
        // Trusted interfaces: a set per family, beside direct6.
        e.trusted = true;
        assert_eq!(
            direct_texts(&e),
            [("trusted6", "fd00:1::3 . udp . 53".to_string())]
        );
        e.direct = true;
        assert_eq!(direct_texts(&e).len(), 2);
        e.addr = "10.205.0.3".parse().unwrap();
        e.direct = false;
        assert_eq!(
            direct_texts(&e),
            [("trusted4", "10.205.0.3 . udp . 53".to_string())]
        );
    }
}
